"""A one-field GraphQL schema for the security_check settings modules."""

import graphene


class Query(graphene.ObjectType):
    ping = graphene.String()

    def resolve_ping(root, info):
        return "pong"


schema = graphene.Schema(query=Query)
