"""The orders GraphQL API. ``GraphQLAuditMiddleware`` records each mutation (approveOrder -> data.update,
deleteOrder -> data.delete, a refusal -> denied) without any code here."""

import graphene
from django.core.exceptions import PermissionDenied
from graphene_django import DjangoObjectType

from orders import services
from orders.models import Order


class OrderType(DjangoObjectType):
    class Meta:
        model = Order
        fields = ("id", "number", "customer", "amount", "status", "created_at")


def _user(info):
    user = info.context.user
    if not user.is_authenticated:
        raise PermissionDenied("Log in first.")
    return user


class OrderQuery(graphene.ObjectType):
    orders = graphene.List(graphene.NonNull(OrderType), required=True)

    def resolve_orders(root, info):
        if not _user(info).has_perm("orders.view_order"):
            raise PermissionDenied("You may not view orders (orders.view_order).")
        return Order.objects.all()


class ApproveOrder(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)

    ok = graphene.Boolean(required=True)
    order = graphene.Field(OrderType)

    def mutate(root, info, id):
        order = Order.objects.filter(pk=id).first()
        if order is None:
            return ApproveOrder(ok=False, order=None)
        return ApproveOrder(ok=True, order=services.approve(_user(info), order))


class DeleteOrder(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)

    ok = graphene.Boolean(required=True)

    def mutate(root, info, id):
        order = Order.objects.filter(pk=id).first()
        if order is None:
            return DeleteOrder(ok=False)
        services.delete(_user(info), order)
        return DeleteOrder(ok=True)


class OrderMutation(graphene.ObjectType):
    approve_order = ApproveOrder.Field()
    delete_order = DeleteOrder.Field()
