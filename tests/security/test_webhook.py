"""Webhook sink against a real local HTTP server, verified with the standardwebhooks package."""

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from rail_django.security import EventType, Severity, security

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_" + base64.b64encode(b"rail-django-test-signing-key-32b!").decode()


class Receiver:
    """A loopback HTTP server whose answers the test scripts."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # answers to give, in order; then 200
        self.release = threading.Event()
        self.release.set()
        self.received = threading.Event()
        receiver = self

        self.redirect_to: str | None = None  # answer 307 with this Location instead

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body.decode()})
                receiver.received.set()
                receiver.release.wait(30)
                if receiver.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    server = Receiver()
    settings.AUDIT_WEBHOOK_URL = server.url
    settings.AUDIT_WEBHOOK_SECRET = SECRET
    settings.AUDIT_WEBHOOK_BACKOFF = 0.01
    settings.AUDIT_STORE_IN_FILE = False
    yield server
    security.flush(timeout=30)
    server.close()


def test_delivery_is_signed_per_standard_webhooks(receiver):
    event = security.emit(EventType.AUTH_LOGIN_FAILURE, context={"username_attempted": "bob", "password": "x"})
    assert security.flush(timeout=30)
    [req] = receiver.requests
    payload = Webhook(SECRET).verify(req["body"], req["headers"])
    assert payload["event_id"] == str(event.event_id)
    assert payload["event_type"] == "auth.login.failure"
    assert payload["context"] == {"username_attempted": "bob", "password": "***REDACTED***"}
    assert req["headers"]["webhook-id"] == f"msg_{event.event_id.hex}"


def test_tampered_body_fails_verification(receiver):
    security.emit(EventType.SECURITY_ALERT)
    security.flush(timeout=30)
    [req] = receiver.requests
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(req["body"].replace("security.alert", "data.read"), req["headers"])


def test_plain_secret_signs_with_its_utf8_bytes(receiver, settings):
    settings.AUDIT_WEBHOOK_SECRET = "plain-shared-secret"
    security.emit(EventType.SECURITY_ALERT)
    security.flush(timeout=30)
    [req] = receiver.requests
    as_whsec = "whsec_" + base64.b64encode(b"plain-shared-secret").decode()
    assert Webhook(as_whsec).verify(req["body"], req["headers"])["event_type"] == "security.alert"


def test_events_below_the_minimum_severity_are_not_sent(receiver):
    security.emit(EventType.DATA_READ, severity=Severity.INFO)
    security.emit(EventType.DATA_DELETE, severity=Severity.WARNING)
    security.flush(timeout=30)
    assert [json.loads(r["body"])["event_type"] for r in receiver.requests] == ["data.delete"]


def test_a_500_is_retried_with_the_same_message_id(receiver):
    receiver.statuses = [500, 503]
    security.emit(EventType.SECURITY_ALERT)
    assert security.flush(timeout=30)
    assert len(receiver.requests) == 3
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


def test_undeliverable_event_is_counted_and_logged(receiver, settings, caplog):
    settings.AUDIT_WEBHOOK_MAX_RETRIES = 2
    receiver.statuses = [500, 500, 500]
    from rail_django.delivery.dispatcher import dispatcher
    from rail_django.sinks import WebhookSink

    with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
        security.emit(EventType.SECURITY_ALERT)
        assert security.flush(timeout=30)
    [sink] = [s for s in dispatcher.sinks() if isinstance(s, WebhookSink)]
    assert sink.undelivered == 1 and len(receiver.requests) == 3
    assert any("gave up" in r.getMessage() and "HTTP 500" in r.getMessage() for r in caplog.records)


def test_a_slow_receiver_does_not_hold_up_the_request(receiver, client, audit_model):
    receiver.release.clear()  # the receiver will not answer until we say so
    response = client.get("/alert/")
    assert response.status_code == 200
    # The request has completed while the receiver is still holding the delivery.
    assert receiver.received.wait(10)
    assert not receiver.release.is_set()
    assert audit_model.objects.filter(event_type="security.alert").count() == 1
    receiver.release.set()
    assert security.flush(timeout=30)


def test_a_dead_receiver_does_not_fail_the_request(settings, client):
    settings.AUDIT_WEBHOOK_URL = "http://127.0.0.1:9/hook"  # discard port: nothing listens
    settings.AUDIT_WEBHOOK_MAX_RETRIES = 1
    settings.AUDIT_WEBHOOK_BACKOFF = 0.01
    assert client.get("/alert/").status_code == 200
    assert security.flush(timeout=30)


def test_a_redirect_is_never_followed(receiver, settings, caplog):
    """A 307 to another URL must not carry the event and its signature there: it is a failed delivery."""
    from rail_django.delivery.dispatcher import dispatcher
    from rail_django.sinks import WebhookSink

    elsewhere = Receiver()
    try:
        receiver.redirect_to = elsewhere.url
        with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
            security.emit(EventType.SECURITY_ALERT)
            assert security.flush(timeout=30)
        assert len(receiver.requests) == 1  # not retried either: the receiver answered
        assert elsewhere.requests == []
        [sink] = [s for s in dispatcher.sinks() if isinstance(s, WebhookSink)]
        assert (sink.delivered, sink.undelivered) == (0, 1)
        assert any("gave up" in r.getMessage() and "HTTP 307" in r.getMessage() for r in caplog.records)
    finally:
        elsewhere.close()
