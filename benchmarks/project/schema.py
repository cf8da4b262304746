"""The GraphQL schema of the benchmark project: a 1,000 x 5 query and a one-row mutation."""

from __future__ import annotations

import graphene
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied


class Item(graphene.ObjectType):
    id = graphene.Int()
    name = graphene.String()
    sku = graphene.String()
    price = graphene.Float()
    in_stock = graphene.Boolean()


_ITEMS: dict[int, list[Item]] = {}


def items_of(size: int) -> list[Item]:
    # Built once: the scenario measures GraphQL execution (and its middleware), not object creation.
    if size not in _ITEMS:
        _ITEMS[size] = [
            Item(id=i, name=f"Item {i}", sku=f"SKU-{i:05d}", price=i * 1.5, in_stock=i % 2 == 0) for i in range(size)
        ]
    return _ITEMS[size]


class Query(graphene.ObjectType):
    items = graphene.List(Item, size=graphene.Int(default_value=1000))

    @staticmethod
    def resolve_items(root, info, size):
        return items_of(size)


class RenameGroup(graphene.Mutation):
    """Updates one row (``SELECT`` then ``UPDATE auth_group``) for a logged-in user."""

    class Arguments:
        id = graphene.ID(required=True)
        name = graphene.String(required=True)

    ok = graphene.Boolean(required=True)

    @staticmethod
    def mutate(root, info, id, name):
        # A mutation checks who calls it (so every variant loads the session and the user).
        if not info.context.user.is_authenticated:
            raise PermissionDenied("log in first")
        group = Group.objects.get(pk=id)
        group.name = name
        group.save(update_fields=["name"])
        return RenameGroup(ok=True)


class Mutation(graphene.ObjectType):
    rename_group = RenameGroup.Field()


schema = graphene.Schema(query=Query, mutation=Mutation)
