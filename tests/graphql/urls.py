"""The probe schema over HTTP: stock view and AuditGraphQLView, with and without the audit middleware."""

from django.urls import path
from graphene_django.views import GraphQLView

from rail_django.security.graphql import AuditGraphQLView, GraphQLAuditMiddleware
from tests.graphql.probe import Recording, schema


def chain(audited: bool) -> list:
    # graphql-core calls the last middleware of the list first: "outer", then the audit one, then "inner".
    return [Recording("inner"), *([GraphQLAuditMiddleware()] if audited else []), Recording("outer")]


urlpatterns = [
    path("stock/", GraphQLView.as_view(schema=schema, middleware=chain(True))),
    path("audited/", AuditGraphQLView.as_view(schema=schema, middleware=chain(True))),
    path("reference/", GraphQLView.as_view(schema=schema, middleware=chain(False))),
]
