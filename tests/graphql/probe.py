"""A small schema with sync and async resolvers, and middleware that records every field it sees.

Served over HTTP by ``tests/graphql/urls.py`` through graphene-django's stock
view and ``AuditGraphQLView``, each with the audit middleware between two
recording ones, and without it (the reference order).
"""

from __future__ import annotations

import asyncio
from typing import Any

import graphene
from django.core.exceptions import PermissionDenied

#: Every (middleware name, field path) seen, in call order; cleared by the tests.
CALLS: list[tuple[str, tuple[Any, ...]]] = []


class Recording:
    """A project's middleware: notes every field it is called for."""

    def __init__(self, name: str) -> None:
        self.name = name

    def resolve(self, next, root, info, **args):  # noqa: A002 (graphene's name)
        CALLS.append((self.name, tuple(info.path.as_list())))
        return next(root, info, **args)


class Part(graphene.ObjectType):
    id = graphene.Int()
    label = graphene.String()
    broken = graphene.String()

    @staticmethod
    def resolve_label(part, info):
        return f"part {part.id}"

    @staticmethod
    def resolve_broken(part, info):
        raise ValueError(f"part {part.id} is broken")


class AsyncPart(graphene.ObjectType):
    id = graphene.Int()
    label = graphene.String()

    @staticmethod
    async def resolve_label(part, info):
        await asyncio.sleep(0)
        return f"part {part.id}"


class Payload(graphene.ObjectType):
    ok = graphene.Boolean()
    parts = graphene.List(Part)


class Query(graphene.ObjectType):
    parts = graphene.List(Part, size=graphene.Int(default_value=3))
    async_parts = graphene.List(AsyncPart, size=graphene.Int(default_value=3))
    ping = graphene.String()
    nested_mutation = graphene.Boolean(description="Runs a mutation of this schema from inside a resolver.")

    @staticmethod
    def resolve_parts(root, info, size):
        return [Part(id=i) for i in range(size)]

    @staticmethod
    async def resolve_async_parts(root, info, size):
        await asyncio.sleep(0)
        return [AsyncPart(id=i) for i in range(size)]

    @staticmethod
    def resolve_ping(root, info):
        return "pong"

    @staticmethod
    def resolve_nested_mutation(root, info):
        from rail_django.security.graphql import GraphQLAuditMiddleware

        result = schema.execute("mutation Inner { touch { ok } }", context_value=info.context,
                                middleware=[GraphQLAuditMiddleware()])
        return not result.errors


class Mutation(graphene.ObjectType):
    touch = graphene.Field(Payload, fail=graphene.Boolean(default_value=False))
    async_touch = graphene.Field(Payload)
    refuse = graphene.Field(Payload)

    @staticmethod
    def resolve_touch(root, info, fail):
        return Payload(ok=not fail, parts=[Part(id=1), Part(id=2)])

    @staticmethod
    async def resolve_async_touch(root, info):
        await asyncio.sleep(0)
        return Payload(ok=True, parts=[Part(id=1)])

    @staticmethod
    def resolve_refuse(root, info):
        raise PermissionDenied("not yours")


schema = graphene.Schema(query=Query, mutation=Mutation)
