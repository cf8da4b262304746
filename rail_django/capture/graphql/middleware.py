"""``GraphQLAuditMiddleware``: one audit event per executed GraphQL operation.

graphql-core wraps every field resolver in the configured middleware, so an
execution middleware is called for every field. This one only needs the root
fields: when the first root field of an operation reaches it, it swaps the
running execution context's middleware manager for one that leaves it out of
every chain but the root fields' (all of it, when the operation is not
audited). Nested fields then run exactly as if the middleware were not
configured, while the other middleware keeps seeing every field, in the same
order. Where that swap cannot be made (no execution context found, or a
project's own ``MiddlewareManager`` subclass), a warning is logged once and
the middleware stays on every field, returning at once for nested ones
(``info.path.prev is not None``).

For root fields it keeps an :class:`~.operation.OperationAudit` on the
running ``graphql-core`` ``ExecutionContext`` (found once per root field in
the caller's frames), and emits the operation's event when the last root
field has been *completed*, sub-selections included:

* after a root resolver returns, the middleware shadows the execution
  context's ``complete_value`` for exactly one call -- the completion of that
  root field -- and removes itself before the nested fields run, so the
  errors raised below the field are seen without touching nested fields;
* when an error on a non-null root field stops the operation, the event is
  emitted at once;
* if anything ends the execution without reaching those points, a
  ``weakref.finalize`` on the execution context emits the event when the
  execution context is released: a mutation is never left unrecorded.

When no execution context can be found (a custom executor), the event is
emitted when the last root resolver returns.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import Any

from graphql import (
    GraphQLFieldResolver,
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    is_non_null_type,
)
from graphql.execution.execute import ExecutionContext
from graphql.execution.middleware import MiddlewareManager
from graphql.pyutils import is_awaitable

from rail_django.capture.graphql.operation import OperationAudit
from rail_django.conf import get_config, get_graphql_config

logger = logging.getLogger("rail_django.audit")

_STATE = "_rail_django_operation_audit"
_NOT_AUDITED: Any = object()
_EXECUTE_FIELD = ExecutionContext.execute_field.__code__
#: Frames searched above the middleware for graphql-core's ``execute_field``.
_MAX_FRAMES = 16


def _execution_context() -> ExecutionContext | None:
    """The graphql-core execution context that called the running resolver chain."""
    frame = sys._getframe(2)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        code = frame.f_code
        if code is _EXECUTE_FIELD or code.co_name == "execute_field":
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, ExecutionContext):
                return candidate
        frame = frame.f_back
    return None


def _errors_of(exe: ExecutionContext) -> list[Any]:
    collected = getattr(exe, "collected_errors", None)  # graphql-core >= 3.2.7
    return collected.errors if collected is not None else exe.errors


def _fallback_store(info: Any) -> tuple[dict[str, Any], str]:
    """Where the audit lives when there is no execution context: on the GraphQL context, per operation."""
    key = f"{_STATE}_{id(info.operation)}"
    context = info.context
    if isinstance(context, dict):
        return context, key
    store = getattr(context, "__dict__", None)
    if store is None:
        store = _ORPHANS
        if len(store) > 256:  # contexts without attributes: keep this bounded
            store.clear()
    return store, key


_ORPHANS: dict[str, Any] = {}
#: The audit of each running operation, by its execution context.
_BY_EXECUTION: weakref.WeakKeyDictionary[ExecutionContext, Any] = weakref.WeakKeyDictionary()


def _operation_audit(info: Any, exe: ExecutionContext | None) -> OperationAudit | None:
    if not get_config().enabled:
        return None
    config = get_graphql_config()
    if info.operation.operation.value != "mutation" and not config.audited_queries:
        return None
    if exe is not None:
        # Not in ``exe.__dict__``: touching an instance's ``__dict__`` slows every later attribute lookup on it
        # (CPython 3.11+ stops specializing them), about 0.15 µs per field on a large query.
        store, key = _BY_EXECUTION, exe
    else:
        store, key = _fallback_store(info)
    audit = store.get(key)
    if audit is None:
        audit = OperationAudit.begin(info, config) or _NOT_AUDITED
        store[key] = audit
        if audit is not _NOT_AUDITED:
            if exe is not None:
                # The safety net: whatever stops the execution, the event leaves when it is released.
                finalizer = weakref.finalize(exe, audit.finish)
                audit.on_finish = finalizer.detach
            else:
                audit.on_finish = lambda: store.pop(key, None)
    return None if audit is _NOT_AUDITED else audit


def _is_audit_middleware(middleware: Any) -> bool:
    """An instance whose ``resolve`` is this module's (a subclass that overrides it keeps every field)."""
    resolve = getattr(type(middleware), "resolve", None)
    return resolve is GraphQLAuditMiddleware.resolve and "resolve" not in getattr(middleware, "__dict__", ())


class _RootFieldsManager(MiddlewareManager):
    """The middleware chains of an audited operation once its first root field ran.

    A resolver of one of the operation's root fields gets the configured
    chain; any other resolver gets the chain without the audit middleware.
    """

    __slots__ = ("_full", "_others", "_roots", "_chains")

    def __init__(self, full: MiddlewareManager, others: list[Any], roots: set[GraphQLFieldResolver]) -> None:
        super().__init__(*full.middlewares)
        self._full = full
        self._others = MiddlewareManager(*others)
        self._roots = roots
        self._chains: dict[GraphQLFieldResolver, GraphQLFieldResolver] = {}

    def get_field_resolver(self, field_resolver: GraphQLFieldResolver) -> GraphQLFieldResolver:
        # Called for every field: one dict lookup once the resolver's chain is built.
        try:
            return self._chains[field_resolver]
        except KeyError:
            manager = self._full if field_resolver in self._roots else self._others
            chain = self._chains[field_resolver] = manager.get_field_resolver(field_resolver)
            return chain


_fallback_logged = False


def _stay_on_every_field(reason: str) -> None:
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        logger.warning(
            "GraphQLAuditMiddleware stays on every GraphQL field (%s); auditing is unaffected, nested fields "
            "cost one extra call each.",
            reason,
        )


def _root_resolvers(exe: ExecutionContext, info: Any, audit: OperationAudit) -> set[GraphQLFieldResolver]:
    """The resolve functions graphql-core uses for the operation's root fields."""
    # The introspection fields resolve through these, whatever the root type (extra ones cost nothing).
    resolvers = {SchemaMetaFieldDef.resolve, TypeMetaFieldDef.resolve, TypeNameMetaFieldDef.resolve}
    fields = info.parent_type.fields
    for root_field in audit.fields.values():
        field = fields.get(root_field.name)
        if field is not None:
            resolvers.add(field.resolve or exe.field_resolver)
    resolvers.discard(None)
    return resolvers


def _narrow_middleware(exe: ExecutionContext | None, info: Any, audit: OperationAudit | None) -> None:
    """Take the audit middleware off the chains it does not need for the rest of this operation."""
    if exe is None:
        _stay_on_every_field("no graphql-core ExecutionContext found above the resolver")
        return
    manager = getattr(exe, "middleware_manager", None)
    if type(manager) is _RootFieldsManager:
        return  # an earlier root field of this operation already did it
    if type(manager) is not MiddlewareManager:
        _stay_on_every_field(f"the execution context's middleware manager is {type(manager).__qualname__}")
        return
    middlewares = list(manager.middlewares)
    others = [m for m in middlewares if not _is_audit_middleware(m)]
    if len(others) == len(middlewares):
        return  # reached through something else (a wrapper): nothing to take off
    if audit is None:
        # Not audited: the rest of the operation runs as if the middleware were not configured.
        exe.middleware_manager = MiddlewareManager(*others)
    else:
        exe.middleware_manager = _RootFieldsManager(manager, others, _root_resolvers(exe, info, audit))


def _install_completion_hook(exe: ExecutionContext, audit: OperationAudit, key: Any, path: Any) -> None:
    """Watch the completion of one root field (its sub-selections), then step aside."""
    stale = exe.__dict__.pop("complete_value", None)
    if stale is not None and getattr(stale, "_rail_django_key", None) is not None:
        audit.field_done(stale._rail_django_key)  # its completion never came (another middleware failed)
    original = exe.complete_value

    def complete_value(return_type: Any, field_nodes: Any, info: Any, field_path: Any, result: Any) -> Any:
        if exe.__dict__.get("complete_value") is complete_value:
            del exe.__dict__["complete_value"]  # nested fields run unobserved
        if field_path is not path:
            audit.field_done(key)
            return original(return_type, field_nodes, info, field_path, result)
        try:
            errors: list[Any] | None = _errors_of(exe)
            before = len(errors)
        except Exception:  # an unknown graphql-core: errors below the field are not attributed
            errors, before = None, 0
        try:
            completed = original(return_type, field_nodes, info, field_path, result)
        except Exception as exc:
            audit.resolver_raised(key, exc, aborts=is_non_null_type(return_type))
            raise
        if is_awaitable(completed):
            return _await_completion(audit, key, completed, errors, before, return_type)
        if errors is not None:
            audit.completion_errors(key, errors[before:])
        audit.field_done(key)
        return completed

    complete_value._rail_django_key = key  # type: ignore[attr-defined]
    exe.complete_value = complete_value  # type: ignore[method-assign]


async def _await_completion(
    audit: OperationAudit, key: Any, completed: Any, errors: list[Any] | None, before: int, return_type: Any
) -> Any:
    try:
        value = await completed
    except Exception as exc:
        audit.resolver_raised(key, exc, aborts=is_non_null_type(return_type))
        raise
    if errors is not None:
        audit.completion_errors(key, errors[before:])
    audit.field_done(key)
    return value


async def _await_resolver(audit: OperationAudit, key: Any, result: Any, return_type: Any) -> Any:
    try:
        value = await result
    except Exception as exc:
        audit.resolver_raised(key, exc, aborts=is_non_null_type(return_type))
        raise
    audit.resolver_returned(key, value)
    audit.field_done(key)
    return value


def _resolve_root(next_: Any, root: Any, info: Any, args: dict[str, Any]) -> Any:
    try:
        exe = _execution_context()
        audit = _operation_audit(info, exe)
    except Exception:  # auditing must never fail the field
        logger.exception("GraphQL audit bookkeeping failed for %r", info.field_name)
        audit, exe = None, None
    else:
        try:
            _narrow_middleware(exe, info, audit)
        except Exception:  # only the speed-up is lost
            logger.exception("Could not take GraphQLAuditMiddleware off the nested GraphQL fields")
    key = info.path.key
    if audit is None or audit.finished or key not in audit.fields:
        return next_(root, info, **args)
    try:
        result = next_(root, info, **args)
    except Exception as exc:
        audit.resolver_raised(key, exc, aborts=is_non_null_type(info.return_type))
        raise
    if is_awaitable(result):
        return _await_resolver(audit, key, result, info.return_type)
    audit.resolver_returned(key, result)
    if exe is not None:
        _install_completion_hook(exe, audit, key, info.path)
    else:
        audit.field_done(key)
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
