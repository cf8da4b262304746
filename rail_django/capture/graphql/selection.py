"""What an operation selects, read from its document with graphql-core's public AST and type API.

graphql-core's own field collection is an internal of its executor (its
signature changed between 3.2 and 3.3), so the root fields are collected
here: fragments and inline fragments followed, ``@skip`` / ``@include``
honoured, one entry per response key, in document order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLSkipDirective,
    InlineFragmentNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_directive_values,
    is_abstract_type,
    type_from_ast,
    visit,
)


def variable_values(info: Any) -> dict[str, Any]:
    """The operation's coerced variables (a dict in graphql-core 3.2; ``.coerced`` of a ``VariableValues`` in 3.3)."""
    values = info.variable_values
    values = getattr(values, "coerced", values)
    return dict(values or {})


def _included(node: Any, variables: Any) -> bool:
    if not node.directives:
        return True
    skip = get_directive_values(GraphQLSkipDirective, node, variables)
    if skip and skip.get("if") is True:
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, variables)
    return not (include and include.get("if") is False)


def _applies(info: Any, type_condition: Any) -> bool:
    if type_condition is None:
        return True
    condition = type_from_ast(info.schema, type_condition)
    if condition is info.parent_type:
        return True
    return condition is not None and is_abstract_type(condition) and info.schema.is_sub_type(condition, info.parent_type)


def root_fields(info: Any) -> dict[str, str]:
    """Response key -> field name of every root field the operation of ``info`` executes, in order.

    ``info`` is the resolve info of one of its root fields (its ``parent_type``
    is the root type).
    """
    fields: dict[str, str] = {}
    seen: set[str] = set()
    # Depth-first, in document order: a stack of selection iterators.
    stack = [iter(info.operation.selection_set.selections)]
    while stack:
        selection = next(stack[-1], None)
        if selection is None:
            stack.pop()
            continue
        if not _included(selection, info.variable_values):
            continue
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            fields.setdefault(key, selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            if _applies(info, selection.type_condition):
                stack.append(iter(selection.selection_set.selections))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = info.fragments.get(name)
            if name not in seen and fragment is not None and _applies(info, fragment.type_condition):
                seen.add(name)
                stack.append(iter(fragment.selection_set.selections))
    return fields


class _FieldCounter(Visitor):
    def __init__(self, type_info: TypeInfo, matches: Callable[[GraphQLField], bool]) -> None:
        super().__init__()
        self.type_info = type_info
        self.matches = matches
        self.count = 0

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        field = self.type_info.get_field_def()
        if field is not None and self.matches(field):
            self.count += 1


def count_selected_fields(info: Any, matches: Callable[[GraphQLField], bool]) -> int:
    """How many field selections in the operation of ``info`` (its fragments included) ``matches`` accepts.

    Counted in the document, not in the response: a field inside a list is
    counted once, as is a fragment spread in several places.
    """
    total = 0
    for node in (info.operation, *info.fragments.values()):
        type_info = TypeInfo(info.schema)
        counter = _FieldCounter(type_info, matches)
        visit(node, TypeInfoVisitor(type_info, counter))
        total += counter.count
    return total
