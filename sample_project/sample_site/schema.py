"""The sample's GraphQL schema: the orders API plus rail-django's audit query and frontend mutation."""

import graphene
from orders.schema import OrderMutation, OrderQuery

from rail_django.extensions.audit.graphql import AuditMutation, AuditQuery


class Query(OrderQuery, AuditQuery, graphene.ObjectType):
    pass


class Mutation(OrderMutation, AuditMutation, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation)
