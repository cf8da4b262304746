"""docs/events.md, alerts.md and integrations.md say what the code does: every event type, the lockout block."""

from __future__ import annotations

import io
import re

from django.core.management import call_command
from django.test import override_settings

from rail_django.conf import DEFAULTS
from rail_django.events.types import EventType
from tests.docs.markdown_blocks import DOCS, block

_TYPE_ROW = re.compile(r"^\| `(?P<member>[A-Z_]+)` \| `(?P<value>[a-z.]+)` \| (?P<severity>[a-z]+) \|$", re.M)


def test_events_md_lists_every_event_type_with_its_default_severity():
    rows = {m["member"]: (m["value"], m["severity"]) for m in _TYPE_ROW.finditer((DOCS / "events.md").read_text())}
    assert rows == {member.name: (member.value, member.default_severity.value) for member in EventType}


def test_events_md_says_what_emits_each_no_code_event():
    text = (DOCS / "events.md").read_text()
    section = text.split("## Security events recorded with no code")[1].split("\n## ")[0]
    for value in ("authz.permission.denied", "security.suspicious.request", "auth.account.created",
                  "auth.account.deleted", "auth.account.disabled", "auth.password.changed", "authz.role.assigned",
                  "authz.role.revoked", "auth.impersonation.started", "auth.impersonation.ended",
                  "auth.token.invalid", "rate.limit.exceeded", "auth.login.locked", "auth.login.unlocked"):
        assert f"`{value}`" in section, value


def test_alerts_md_lockout_block_is_real_settings_with_the_defaults_and_passes_check():
    code = block("alerts.md", "python", "AUDIT_LOCKOUT_PARAMETERS")
    scope: dict = {}
    exec(code, scope)
    values = {name: value for name, value in scope.items() if name.isupper()}
    values["MIDDLEWARE"] = [m for m in values["MIDDLEWARE"] if m is not ...]
    for name, value in values.items():
        if name.startswith("AUDIT_LOCKOUT_") and name != "AUDIT_LOCKOUT_ENABLED":
            default = DEFAULTS[name]
            assert value == (default() if callable(default) else default), f"{name}: the block says 'the defaults'"
    from django.conf import settings

    values["MIDDLEWARE"] = [*settings.MIDDLEWARE, *[m for m in values["MIDDLEWARE"] if m not in settings.MIDDLEWARE]]
    with override_settings(**values):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())  # raises on an error


def test_alerts_md_migration_table_names_real_settings():
    text = (DOCS / "alerts.md").read_text().split("### Migrating from django-axes")[1]
    for name in re.findall(r"`(AUDIT_[A-Z_]+)`", text):
        assert name in DEFAULTS, name


def test_integrations_page_is_linked_and_names_real_modules():
    import importlib

    assert "](integrations.md)" in (DOCS / "index.md").read_text()
    text = (DOCS / "integrations.md").read_text()
    for module in re.findall(r"`(rail_django\.[a-z_.]+)`", text):
        importlib.import_module(module)
