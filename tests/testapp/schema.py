"""The GraphQL schema the tests (and the benchmark) call over HTTP through graphene-django's view."""

from __future__ import annotations

import asyncio

import graphene
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from graphene_django.constants import MUTATION_ERRORS_FLAG

from rail_django.read.graphql import AuditMutation, AuditQuery


class Part(graphene.ObjectType):
    id = graphene.Int()
    name = graphene.String()
    broken = graphene.String(description="Always fails: a nested error.")

    @staticmethod
    def resolve_broken(part, info):
        raise ValueError(f"part {part.id} is broken: token=abc123secret is stale")


class Product(graphene.ObjectType):
    """Five scalar fields and a nested list: the shape the field-overhead benchmark queries."""

    id = graphene.Int()
    name = graphene.String()
    sku = graphene.String()
    price = graphene.Float()
    in_stock = graphene.Boolean()
    parts = graphene.List(Part)


def make_products(size: int) -> list[Product]:
    return [
        Product(
            id=i,
            name=f"Product {i}",
            sku=f"SKU-{i:05d}",
            price=i * 1.5,
            in_stock=i % 2 == 0,
            parts=[Part(id=i * 10 + j, name=f"Part {j}") for j in range(3)],
        )
        for i in range(size)
    ]


class GroupType(graphene.ObjectType):
    id = graphene.ID()
    name = graphene.String()
    broken_note = graphene.String(description="Always fails: a nested error under a mutation payload.")

    @staticmethod
    def resolve_broken_note(group, info):
        raise RuntimeError("note unavailable")


class GroupPayload:
    ok = graphene.Boolean(required=True)
    error = graphene.String()
    group = graphene.Field(GroupType)


class CreateGroup(GroupPayload, graphene.Mutation):
    class Arguments:
        name = graphene.String(required=True)

    @staticmethod
    def mutate(root, info, name):
        if not name.strip():
            return CreateGroup(ok=False, error="name must not be empty")
        group = Group.objects.create(name=name)
        return CreateGroup(ok=True, group=group)


class UpdateGroup(GroupPayload, graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)
        name = graphene.String(required=True)

    @staticmethod
    def mutate(root, info, id, name):
        group = Group.objects.get(pk=id)
        group.name = name
        group.save()
        return UpdateGroup(ok=True, group=group)


class DeleteGroup(GroupPayload, graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)

    @staticmethod
    def mutate(root, info, id):
        if not info.context.user.has_perm("auth.delete_group"):
            raise PermissionDenied("You may not delete groups.")
        Group.objects.filter(pk=id).delete()
        return DeleteGroup(ok=True)


class ArchiveGroup(GroupPayload, graphene.Mutation):
    """No create/update/delete prefix: the event type comes from the project mapping, else data.update."""

    class Arguments:
        id = graphene.ID(required=True)

    @staticmethod
    def mutate(root, info, id):
        return ArchiveGroup(ok=True, group=Group.objects.get(pk=id))


class BulkCreateGroups(GroupPayload, graphene.Mutation):
    class Arguments:
        names = graphene.List(graphene.NonNull(graphene.String), required=True)

    @staticmethod
    def mutate(root, info, names):
        Group.objects.bulk_create([Group(name=name) for name in names])
        return BulkCreateGroups(ok=True)


class ExplodeGroup(GroupPayload, graphene.Mutation):
    """Raises: the resolver-exception case."""

    class Arguments:
        id = graphene.ID(required=True)

    @staticmethod
    def mutate(root, info, id):
        raise RuntimeError("database exploded while connecting with password=hunter2")


class ValidateGroups(graphene.Mutation):
    """Answers a non-empty ``errors`` list, flagged for rollback as graphene-django's form mutations do."""

    class Arguments:
        name = graphene.String(required=True)

    errors = graphene.List(graphene.String)

    @staticmethod
    def mutate(root, info, name):
        setattr(info.context, MUTATION_ERRORS_FLAG, True)  # ATOMIC_MUTATIONS then rolls the operation back
        return ValidateGroups(errors=[f"{name!r} is reserved"])


class SetPassword(graphene.Mutation):
    class Arguments:
        password = graphene.String(required=True)
        api_token = graphene.String()

    ok = graphene.Boolean(required=True)

    @staticmethod
    def mutate(root, info, password, api_token=None):
        user = info.context.user
        user.set_password(password)
        user.save()
        return SetPassword(ok=True)


class Query(AuditQuery, graphene.ObjectType):
    catalog = graphene.List(Product, size=graphene.Int(default_value=3))
    groups = graphene.List(GroupType)
    required_answer = graphene.String(required=True, description="Non-null and always null: stops the operation.")
    ping = graphene.String()

    @staticmethod
    def resolve_catalog(root, info, size):
        return make_products(size)

    @staticmethod
    def resolve_groups(root, info):
        return Group.objects.order_by("pk")

    @staticmethod
    def resolve_required_answer(root, info):
        return None

    @staticmethod
    def resolve_ping(root, info):
        return "pong"


class Mutation(AuditMutation, graphene.ObjectType):
    create_group = CreateGroup.Field()
    update_group = UpdateGroup.Field()
    delete_group = DeleteGroup.Field()
    archive_group = ArchiveGroup.Field()
    bulk_create_groups = BulkCreateGroups.Field()
    explode_group = ExplodeGroup.Field()
    validate_groups = ValidateGroups.Field()
    set_password = SetPassword.Field()


class Subscription(graphene.ObjectType):
    ticks = graphene.Int()

    @staticmethod
    async def subscribe_ticks(root, info):
        for tick in range(3):
            await asyncio.sleep(0)
            yield tick


schema = graphene.Schema(query=Query, mutation=Mutation, subscription=Subscription)
