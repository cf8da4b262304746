"""GraphiQL off and introspection refused (for settings_good)."""

from django.urls import path
from graphene.validation import DisableIntrospection
from graphene_django.views import GraphQLView

urlpatterns = [path("graphql/", GraphQLView.as_view(graphiql=False, validation_rules=[DisableIntrospection]))]
