"""``manage.py check`` rejects a bad ``RAIL_DJANGO_GRAPHQL`` with rail_django.E020-E025 (and W020 for typos)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from rail_django.checks import check_graphql
from rail_django.conf import get_graphql_config


def _ids(settings, value):
    settings.RAIL_DJANGO_GRAPHQL = value
    return sorted(message.id for message in check_graphql())


def test_defaults_and_the_test_settings_pass(settings):
    assert check_graphql() == []
    del settings.RAIL_DJANGO_GRAPHQL
    assert check_graphql() == []


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("yes", ["rail_django.E020"]),
        ({"security_settings": ["audited_query_fields"]}, ["rail_django.E020"]),
        ({"security_settings": {"audited_query_fields": "catalog"}}, ["rail_django.E021"]),
        ({"security_settings": {"audited_query_fields": ["catalog", ""]}}, ["rail_django.E021"]),
        ({"security_settings": {"mutation_event_types": ["createOrder"]}}, ["rail_django.E022"]),
        ({"security_settings": {"mutation_event_types": {"approveOrder": "Data Update"}}}, ["rail_django.E022"]),
        ({"schema_settings": {"enable_extension_mutations": "true"}}, ["rail_django.E023"]),
        ({"security_settings": {"record_validation_failures": 1}}, ["rail_django.E023"]),
        ({"security_settings": {"frontend_audit_allow_anonymous": None}}, ["rail_django.E023"]),
        ({"security_settings": {"frontend_audit_rate_limit": 0}}, ["rail_django.E024"]),
        ({"security_settings": {"frontend_audit_rate_window": 2.5}}, ["rail_django.E024"]),
        ({"security_settings": {"frontend_audit_max_metadata_bytes": 10_000_000}}, ["rail_django.E025"]),
        ({"security_settings": {"audited_query_field": ["catalog"]}}, ["rail_django.W020"]),
    ],
)
def test_bad_values_are_reported_with_their_id(settings, value, ids):
    assert _ids(settings, value) == ids


def test_good_values_pass_and_reach_the_runtime(settings):
    value = {
        "schema_settings": {"enable_extension_mutations": False, "other_library_key": 1},
        "security_settings": {
            "audited_query_fields": ["Catalog", "order_search"],
            "mutation_event_types": {"approve_order": "data.update", "grantRole": "authz.role.assigned"},
            "record_validation_failures": True,
            "frontend_audit_allow_anonymous": True,
            "frontend_audit_rate_limit": None,
            "frontend_audit_rate_window": 30,
            "frontend_audit_max_metadata_bytes": 1024,
        },
    }
    assert _ids(settings, value) == []

    config = get_graphql_config()
    assert config.extension_mutations is False
    assert config.audited_queries == frozenset({"catalog", "ordersearch"})
    assert config.mutation_event_types == {"approveorder": "data.update", "grantrole": "authz.role.assigned"}
    assert config.record_validation_failures and config.frontend_allow_anonymous
    assert config.frontend_rate_limit is None and config.frontend_rate_window == 30
    assert config.frontend_max_metadata_bytes == 1024


def test_manage_py_check_fails_naming_the_setting(settings):
    settings.RAIL_DJANGO_GRAPHQL = {"security_settings": {"frontend_audit_rate_limit": -5}}

    with pytest.raises(SystemCheckError, match=r'rail_django.E024.*frontend_audit_rate_limit.*-5'):
        call_command("check")
