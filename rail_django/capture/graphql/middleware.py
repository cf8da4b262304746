"""``GraphQLAuditMiddleware``: one audit event per executed GraphQL operation.

graphql-core calls an execution middleware for every field it resolves. This
one acts on root fields only (``info.path.prev is None``) and hands every
other field straight on. On a root field it finds the operation's
:class:`~.operation.OperationAudit`:

* when the operation runs inside an :class:`~.run.OperationRun` (started by
  ``AuditGraphQLView`` or ``audited_execute``), the run owns it and emits the
  event from the ``ExecutionResult`` once execution has returned;
* otherwise (the stock ``GraphQLView``, ``schema.execute(middleware=[...])``)
  the audit is kept per operation on the GraphQL context (see :mod:`.state`)
  and emits the event when the last root field's resolver has finished.

:func:`audit_middleware` builds the middleware argument that keeps the audit
middleware on root-field resolvers only (graphql-core's public
``MiddlewareManager.get_field_resolver``), so nested fields do not pay for it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from graphql import (
    GraphQLFieldResolver,
    GraphQLSchema,
    MiddlewareManager,
    default_field_resolver,
    is_non_null_type,
)

from rail_django.capture.graphql import state
from rail_django.capture.graphql.operation import OperationAudit
from rail_django.capture.graphql.run import current_run
from rail_django.conf import get_config, get_graphql_config

logger = logging.getLogger("rail_django.audit")

#: Where the middleware keeps the audit of an operation nobody hands the result back for.
STATE_NAME = "operation_audit"
_NOT_AUDITED: Any = object()


def _begin(info: Any) -> OperationAudit | None:
    """A new audit for the operation of ``info``, or ``None`` when it is not audited."""
    if not get_config().enabled:
        return None
    config = get_graphql_config()
    if info.operation.operation.value != "mutation" and not config.audited_queries:
        return None  # the usual query: decided without reading the document
    return OperationAudit.begin(info, config)


def operation_audit(info: Any) -> OperationAudit | None:
    """The audit of the operation ``info`` belongs to (``None`` when it is not audited)."""
    run = current_run()
    if run is not None and run.owns(info.operation):
        if not run.decided:
            run.decided = True
            run.audit = _begin(info)
            if run.audit is not None:
                run.audit.emits_on_completion = False  # the run emits it from the result
        return run.audit
    audit = state.get(info, STATE_NAME)
    if audit is None:
        audit = _begin(info) or _NOT_AUDITED
        state.put(info, STATE_NAME, audit)
        if audit is not _NOT_AUDITED:
            operation, context = info.operation, info.context
            audit.on_finish = lambda: state.discard(operation, context, STATE_NAME)
    return None if audit is _NOT_AUDITED else audit


async def _await_root(audit: OperationAudit, key: str, result: Any, return_type: Any, label: str) -> Any:
    non_null = is_non_null_type(return_type)
    try:
        value = await result
    except Exception as exc:
        audit.resolver_raised(key, exc, aborts=non_null)
        raise
    audit.resolver_returned(key, value, non_null=non_null, label=label)
    return value


def _resolve_root(next_: Any, root: Any, info: Any, args: dict[str, Any]) -> Any:
    try:
        audit = operation_audit(info)
    except Exception:  # auditing must never fail the field
        logger.exception("GraphQL audit bookkeeping failed for %r", info.field_name)
        audit = None
    key = info.path.key
    if audit is None or audit.finished or key not in audit.fields:
        return next_(root, info, **args)
    try:
        result = next_(root, info, **args)
    except Exception as exc:
        audit.resolver_raised(key, exc, aborts=is_non_null_type(info.return_type))
        raise
    label = f"{info.parent_type.name}.{info.field_name}"
    if info.is_awaitable(result):
        return _await_root(audit, key, result, info.return_type, label)
    audit.resolver_returned(key, result, non_null=is_non_null_type(info.return_type), label=label)
    return result


class GraphQLAuditMiddleware:
    """Records one audit event per executed GraphQL operation.

    Add ``"rail_django.security.graphql.GraphQLAuditMiddleware"`` to
    ``GRAPHENE["MIDDLEWARE"]`` (last in the list, so it also sees errors
    raised by the other middleware). Mutations are always recorded; queries
    and subscriptions when a root field or the operation name is listed in
    ``RAIL_DJANGO_GRAPHQL["security_settings"]["audited_query_fields"]``.
    See ``docs/graphql.md`` for the event's type, outcome and content.
    """

    def resolve(self, next: Any, root: Any, info: Any, **args: Any) -> Any:  # noqa: A002 (graphene's name)
        if info.path.prev is not None:
            return next(root, info, **args)
        return _resolve_root(next, root, info, args)


def is_audit_middleware(middleware: Any) -> bool:
    """A middleware whose ``resolve`` is this module's (a subclass that overrides it stays on every field)."""
    resolve = getattr(type(middleware), "resolve", None)
    return resolve is GraphQLAuditMiddleware.resolve and "resolve" not in getattr(middleware, "__dict__", ())


class _Chains(dict):
    """Resolver -> its middleware chain, built on first use."""

    def __init__(self, build: Any) -> None:
        super().__init__()
        self.build = build

    def __missing__(self, field_resolver: GraphQLFieldResolver) -> GraphQLFieldResolver:
        chain = self[field_resolver] = self.build(field_resolver)
        return chain


class RootFieldsMiddlewareManager(MiddlewareManager):
    """graphql-core's ``MiddlewareManager``, with ``GraphQLAuditMiddleware`` on root-field resolvers only.

    Every other middleware keeps every field, in the configured order. A
    resolver shared by a root field and nested fields keeps the audit
    middleware, which hands the nested calls straight on.
    """

    def __init__(self, *middlewares: Any, root_resolvers: frozenset[Any]) -> None:
        super().__init__(*middlewares)
        self.root_resolvers = root_resolvers
        self.others = MiddlewareManager(*[m for m in middlewares if not is_audit_middleware(m)])
        self.chains = _Chains(self._build_chain)
        # graphql-core asks for every field it resolves: once a resolver's chain is built, answering is one
        # dict lookup made in C (the dict's own __getitem__), not a Python call.
        self.get_field_resolver = self.chains.__getitem__  # type: ignore[method-assign]

    def _build_chain(self, field_resolver: GraphQLFieldResolver) -> GraphQLFieldResolver:
        if field_resolver in self.root_resolvers:
            return MiddlewareManager.get_field_resolver(self, field_resolver)
        return self.others.get_field_resolver(field_resolver)


_root_resolvers: weakref.WeakKeyDictionary[GraphQLSchema, dict[Any, frozenset[Any]]] = weakref.WeakKeyDictionary()


def root_resolvers(schema: GraphQLSchema, field_resolver: Any = None) -> frozenset[Any]:
    """The resolve functions graphql-core calls for the root fields of ``schema`` (cached per schema)."""
    default = field_resolver or default_field_resolver
    by_default = _root_resolvers.get(schema)
    if by_default is not None and default in by_default:
        return by_default[default]
    found = set()
    for root_type in (schema.query_type, schema.mutation_type, schema.subscription_type):
        if root_type is not None:
            found.update(field.resolve or default for field in root_type.fields.values())
    resolvers = frozenset(found)
    _root_resolvers.setdefault(schema, {})[default] = resolvers
    return resolvers


#: The project's manager classes already warned about (once per class and process).
_warned_managers: set[type] = set()


def audit_middleware(schema: GraphQLSchema, middleware: Any, *, field_resolver: Any = None) -> Any:
    """The ``middleware`` argument for ``execute``: the same middleware, the audit one on root fields only.

    ``middleware`` is what a view or caller would pass (``None``, a list, or a
    ``MiddlewareManager``). Without a ``GraphQLAuditMiddleware`` in it, it is
    returned unchanged; so is a project's own ``MiddlewareManager`` subclass.
    """
    if middleware is None:
        return None
    if isinstance(middleware, MiddlewareManager):
        if type(middleware) is not MiddlewareManager:
            manager_class = type(middleware)
            if manager_class not in _warned_managers and not any(is_audit_middleware(m) for m in middleware.middlewares):
                _warned_managers.add(manager_class)
                logger.warning(
                    "%s has no GraphQLAuditMiddleware: GraphQL operations run through it are not audited.",
                    type(middleware).__qualname__,
                )
            return middleware
        middleware = middleware.middlewares
    middlewares = list(middleware)
    if not any(is_audit_middleware(m) for m in middlewares):
        return middlewares
    return RootFieldsMiddlewareManager(*middlewares, root_resolvers=root_resolvers(schema, field_resolver))
