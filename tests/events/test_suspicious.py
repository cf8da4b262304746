"""Django's ``django.security.*`` loggers -> ``security.suspicious.request``: CSRF, DisallowedHost, oversized bodies."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.test import Client

from rail_django.capture import suspicious
from tests.conftest import IN_CI
from tests.events.conftest import context_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.events.urls")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_csrf_failure_is_recorded_with_kind_csrf(rows):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/form/", {"note": "hi"}, REMOTE_ADDR="203.0.113.70", HTTP_USER_AGENT="probe/1")
    assert response.status_code == 403
    (event,) = rows("security.suspicious.request")
    assert context_of(event) == {"kind": "csrf", "logger": "django.security.csrf", "status_code": 403}
    assert (event.client_ip, event.user_agent, event.request_path, event.request_method) == (
        "203.0.113.70", "probe/1", "/form/", "POST")
    assert event.additional_data["outcome"] == "blocked" and event.severity == "warning"
    assert event.error_message.startswith("Forbidden (CSRF cookie not set.)")
    assert event.correlation_id == response["X-Correlation-ID"]


def test_disallowed_host_is_recorded_with_its_class_name(client, rows, settings):
    settings.ALLOWED_HOSTS = ["good.example"]
    assert client.get("/plain/", HTTP_HOST="evil.example", REMOTE_ADDR="203.0.113.71").status_code == 400
    assert client.get("/plain/", HTTP_HOST="good.example").status_code == 200
    (event,) = rows("security.suspicious.request")
    assert context_of(event)["kind"] == "DisallowedHost"
    assert context_of(event)["logger"] == "django.security.DisallowedHost"
    assert "evil.example" in event.error_message and event.client_ip == "203.0.113.71"


def test_oversized_request_body_is_recorded(rows, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = Client().post("/form/", {"note": "x" * 5000})
    assert response.status_code == 400
    (event,) = rows("security.suspicious.request")
    assert context_of(event)["kind"] == "RequestDataTooBig"


def test_a_record_without_request_is_still_recorded(rows):
    logging.getLogger("django.security.SuspiciousFileOperation").error("Detected path traversal attempt in '../x'")
    (event,) = rows("security.suspicious.request")
    assert context_of(event) == {"kind": "SuspiciousFileOperation", "logger": "django.security.SuspiciousFileOperation"}
    assert event.request_path == "" and event.client_ip is None


def test_a_flood_records_the_budget_then_one_rate_limit_event(client, rows, settings):
    settings.ALLOWED_HOSTS = ["good.example"]
    settings.AUDIT_CLIENT_EVENT_LIMIT = {"events": 5, "window": 60}
    for _ in range(30):
        client.get("/plain/", HTTP_HOST="evil.example", REMOTE_ADDR="198.51.100.99")
    assert len(rows("security.suspicious.request")) == 5
    (limited,) = rows("rate.limit.exceeded")
    assert context_of(limited)["scope"] == "suspicious:DisallowedHost"


def test_the_projects_handlers_keep_their_records(rows):
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.name)

    project_handler = Keep()
    logger = logging.getLogger("django.security")
    logger.addHandler(project_handler)
    try:
        assert suspicious.install() is suspicious.install()  # installing again adds nothing
        assert sum(isinstance(h, suspicious.SuspiciousRequestHandler) for h in logger.handlers) == 1
        Client(enforce_csrf_checks=True).post("/form/")
    finally:
        logger.removeHandler(project_handler)
    assert seen == ["django.security.csrf"]
    assert len(rows("security.suspicious.request")) == 1


def test_a_failing_audit_never_breaks_the_response(client, rows, settings, monkeypatch):
    settings.ALLOWED_HOSTS = ["good.example"]

    def broken(*args, **kwargs):
        raise RuntimeError("audit down")

    monkeypatch.setattr(suspicious, "record_suspicious", broken)
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays quiet, as in production
    assert client.get("/plain/", HTTP_HOST="evil.example").status_code == 400


# -- a real browser --------------------------------------------------------------------------------


@pytest.fixture
def chromium_page():
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (as root: apt-get install -y chromium; 'make test' does it)"
        if IN_CI:
            pytest.fail(f"{reason}, and CI=true forbids skipping", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(user_agent="RailBrowser/1")
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            browser.close()


def test_chromium_submitting_a_form_after_its_csrf_cookie_is_gone(live_server, chromium_page, rows):
    page = chromium_page.new_page()
    page.goto(f"{live_server.url}/form/")
    page.fill("#note", "first")
    page.click("#save")
    assert "saved first" in page.content()  # the token works: no event

    page.goto(f"{live_server.url}/form/")
    chromium_page.clear_cookies()  # the cookie half of the CSRF pair is gone (expired, blocked, stolen form)
    page.fill("#note", "second")
    with page.expect_response(lambda r: r.url.endswith("/form/") and r.request.method == "POST") as answer:
        page.click("#save")
    assert answer.value.status == 403
    # Playwright's sync API runs an event loop in this thread: read the rows from another one.
    with ThreadPoolExecutor(1) as pool:
        (event,) = pool.submit(rows, "security.suspicious.request").result()
    assert context_of(event)["kind"] == "csrf"
    assert (event.user_agent, event.request_method, event.request_path) == ("RailBrowser/1", "POST", "/form/")
    assert event.client_ip == "127.0.0.1"
