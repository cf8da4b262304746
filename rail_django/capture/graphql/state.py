"""State that belongs to one executing operation, kept where every resolver of it can find it.

The key is public: the operation's ``OperationDefinitionNode`` (``info.operation``,
the same object for every field of one execution), kept on the GraphQL
context (``info.context``: the request, under graphene-django). A context
that takes no attributes (``None``, a ``dict`` the project owns...) uses a
small bounded table in this module instead.
"""

from __future__ import annotations

import threading
from typing import Any

#: The attribute set on a context object (graphene-django's context is the request).
CONTEXT_ATTRIBUTE = "_rail_django_graphql_operations"
#: Most entries kept for contexts that take no attributes; the oldest are dropped beyond it.
MAX_DETACHED = 64

_detached: dict[tuple[str, int], tuple[Any, Any]] = {}
_detached_lock = threading.Lock()


def _table(context: Any) -> dict[tuple[str, int], tuple[Any, Any]] | None:
    table = getattr(context, CONTEXT_ATTRIBUTE, None)
    if table is None:
        try:
            table = {}
            setattr(context, CONTEXT_ATTRIBUTE, table)
        except (AttributeError, TypeError):
            return None
    return table


def get(info: Any, name: str) -> Any:
    """The value stored under ``name`` for the operation of ``info``, or ``None``."""
    operation = info.operation
    key = (name, id(operation))
    table = _table(info.context)
    entry = table.get(key) if table is not None else _detached.get(key)
    # The entry holds the operation itself, so its id cannot have been reused while it lives.
    return entry[1] if entry is not None and entry[0] is operation else None


def put(info: Any, name: str, value: Any) -> None:
    """Store ``value`` under ``name`` for the operation of ``info``."""
    operation = info.operation
    key = (name, id(operation))
    table = _table(info.context)
    if table is not None:
        table[key] = (operation, value)
        return
    with _detached_lock:
        while len(_detached) >= MAX_DETACHED:
            del _detached[next(iter(_detached))]
        _detached[key] = (operation, value)


def discard(operation: Any, context: Any, name: str) -> None:
    """Forget ``name`` for ``operation`` (``info.operation``) run with ``context`` (``info.context``)."""
    key = (name, id(operation))
    table = getattr(context, CONTEXT_ATTRIBUTE, None)
    if table is not None:
        table.pop(key, None)
    else:
        with _detached_lock:
            _detached.pop(key, None)
