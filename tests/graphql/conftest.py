"""Helpers for the GraphQL tests: every call goes over HTTP through graphene-django's ``GraphQLView``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.cache import caches


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    """Rate-limit counters live in the cache; user ids repeat between tests on some backends."""
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def graphql(client):
    """``graphql(query, variables=None, operation_name=None, path="/graphql/")`` -> (status, JSON body)."""

    def run(
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        path: str = "/graphql/",
        **extra: Any,
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation_name is not None:
            body["operationName"] = operation_name
        response = client.post(path, json.dumps(body), content_type="application/json", **extra)
        return response.status_code, response.json()

    return run


#: graphene-django's stock view with the middleware alone, and AuditGraphQLView (tests/urls.py).
STOCK_VIEW, AUDITED_VIEW = "/graphql/", "/graphql/audited/"


@pytest.fixture(params=[STOCK_VIEW, AUDITED_VIEW], ids=["stock-view", "audited-view"])
def endpoint(request):
    """Each view a project may serve its schema with; the test runs once through each."""
    return request.param


@pytest.fixture
def rail_graphql(settings):
    """``rail_graphql(**security_settings)``: set RAIL_DJANGO_GRAPHQL["security_settings"] for one test."""

    def configure(schema_settings: dict[str, Any] | None = None, **security_settings: Any) -> None:
        settings.RAIL_DJANGO_GRAPHQL = {
            "schema_settings": schema_settings or {},
            "security_settings": security_settings,
        }

    return configure


def rows(model, **filters):
    return list(model.objects.filter(**filters).order_by("id"))
