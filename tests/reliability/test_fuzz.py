"""Fuzz run: generated GraphQL and HTTP inputs against the real endpoints never give a 500.

``RAIL_DJANGO_FUZZ_COUNT`` inputs (1,000 by default, so ``make test`` stays quick; run 10,000+ with
``RAIL_DJANGO_FUZZ_COUNT=10000 .venv/bin/python -m pytest tests/reliability/test_fuzz.py``) from
``RAIL_DJANGO_FUZZ_SEED`` (a fixed seed by default, so a failure reproduces) go through the test client to
``/graphql/``, ``/graphql/audited/``, ``/login/`` and the views that emit events, as an anonymous and as a
logged-in superuser (who may read audit events). Every answer must be below 500, and no audit sink may fail
(an input the database refuses would be an event lost).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

import pytest
from django.conf import settings
from django.core.signals import got_request_exception
from django.test import Client

from rail_django.delivery.dispatcher import dispatcher
from rail_django.security import security
from tests.reliability.fuzz_inputs import FuzzInputs

pytestmark = [pytest.mark.sqlite_only, pytest.mark.django_db(transaction=True)]

COUNT = int(os.environ.get("RAIL_DJANGO_FUZZ_COUNT", "1000"))
SEED = int(os.environ.get("RAIL_DJANGO_FUZZ_SEED", "20250601"))


@pytest.fixture
def fuzz_settings(settings):
    settings.RAIL_DJANGO_GRAPHQL = {
        "schema_settings": {"enable_extension_mutations": True},
        "security_settings": {
            "audited_query_fields": ["catalog", "groups", "auditEvents"],
            "record_validation_failures": True,  # /graphql/audited/ records what it rejects
        },
    }
    settings.RAIL_DJANGO_TRUSTED_PROXIES = ["127.0.0.1"]  # X-Forwarded-For is parsed
    settings.AUDIT_STORE_IN_FILE = True


def test_generated_inputs_never_give_a_500(fuzz_settings, django_user_model, audit_model, audit_log_file, caplog,
                                           monkeypatch, fault_report):
    admin = django_user_model.objects.create_superuser("fuzz-admin", "fuzz@example.com", "fuzz-password-1")
    delivered = []
    deliver = dispatcher.deliver

    def counting(event):  # a spy: every event handed to the sinks
        delivered.append(event.event_id)
        return deliver(event)

    monkeypatch.setattr(dispatcher, "deliver", counting)
    anonymous = Client(raise_request_exception=False)
    logged_in = Client(raise_request_exception=False)
    errors: list[str] = []

    def remember(sender, request=None, **kwargs):
        errors.append("".join(traceback.format_exception(*sys.exc_info())))

    got_request_exception.connect(remember)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    try:
        with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
            for number, item in zip(range(COUNT), FuzzInputs(SEED), strict=False):
                if number % 100 == 0:
                    logged_in.force_login(admin)  # setPassword or a bad cookie may have ended the session
                client = logged_in if item.logged_in else anonymous
                errors.clear()
                response = client.generic(item.method, item.path, item.body, item.content_type, **item.headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    failures.append(f"#{number} {item.describe()}\n{''.join(errors)[-3000:]}")
            assert security.flush(timeout=60)
    finally:
        got_request_exception.disconnect(remember)
    sink_failures = [r.getMessage() for r in caplog.records if "Audit sink" in r.getMessage()]
    stored = audit_model.objects.filter(event_id__in=delivered).count()
    fault_report(
        f"fuzz: {COUNT} generated GraphQL/HTTP inputs (seed {SEED})", emitted=len(delivered), stored=stored,
        failed_requests=len(failures),
        note="status counts " + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items())),
    )
    if failures:
        report = Path(settings.TEST_OUTPUT) / "fuzz-failures.txt"
        report.write_text("\n\n".join(failures))
        pytest.fail(f"{len(failures)} of {COUNT} inputs gave a 500 (all in {report}); the first:\n" + failures[0])
    assert not sink_failures, sink_failures[:3]
    assert stored == len(delivered)  # every event the inputs caused is in the database


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{ ping }\xff", "application/graphql"),  # not UTF-8
        (b"[" * 200_000 + b"]", "application/json"),  # nested past the parser's recursion limit
    ],
    ids=["graphql-body-not-utf8", "json-nested-too-deep"],
)
def test_audited_view_answers_400_to_a_body_it_cannot_read(client, body, content_type):
    response = client.generic("POST", "/graphql/audited/", body, content_type)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] in (
        "The request body is not valid UTF-8.", "The request body is nested too deeply.",
    )
