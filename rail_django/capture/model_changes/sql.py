"""Reading the ``UPDATE`` and ``INSERT`` statements Django's ORM writes.

Only the statement shapes Django's SQL compilers produce are taken apart
(``UPDATE <table> SET "col" = %s, ... WHERE ...`` and ``INSERT INTO <table>
(cols) VALUES (...), ...`` or PostgreSQL's ``SELECT * FROM UNNEST(...)``):
those are the ones whose ``WHERE`` clause can be reused to list the rows an
update touches. Anything else aimed at a tracked table (raw SQL) is still
recognised by its table and counted, but not taken apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_UPDATE = re.compile(r"UPDATE\s+(?P<table>\"[^\"]+\"|`[^`]+`|[\w.]+)\s+SET\s+", re.IGNORECASE)
_INSERT = re.compile(
    r"INSERT\s+(?P<mod>OR\s+\w+\s+|IGNORE\s+)?INTO\s+(?P<table>\"[^\"]+\"|`[^`]+`|[\w.]+)\s*",
    re.IGNORECASE,
)
_ASSIGNMENT = re.compile(r"\s*(?P<column>\"[^\"]+\"|`[^`]+`|\w+)\s*=\s*(?P<expr>.*\S)\s*", re.DOTALL)


def unquote(name: str) -> str:
    if len(name) >= 2 and name[0] in "\"`" and name[-1] == name[0]:
        return name[1:-1]
    return name


#: What matters when walking a statement: quoted text (skipped whole), parentheses, commas and
#: the clause words looked for. A regular expression finds them, so long statements (a bulk
#: update's CASE over thousands of rows) are walked token by token, not character by character.
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`|[(),]"
    r"| WHERE | ORDER BY | FROM | RETURNING | LIMIT | ON CONFLICT| ON DUPLICATE KEY UPDATE ",
    re.IGNORECASE,
)


def _tokens(text: str, start: int = 0):
    """Yield ``(index, token, depth)``; ``depth`` counts the parentheses open before the token."""
    depth = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token == "(":
            yield match.start(), token, depth
            depth += 1
        elif token == ")":
            depth -= 1
            yield match.start(), token, depth
        else:
            yield match.start(), token, depth


def find_top_level(text: str, word: str, start: int = 0) -> int:
    """Index of a clause word (e.g. ``" WHERE "``) outside quotes and parentheses, or -1."""
    word = word.upper()
    for i, token, depth in _tokens(text, start):
        if depth == 0 and token[0] == " " and token.upper() == word:
            return i
    return -1


def split_top_level(text: str) -> list[str]:
    """``text`` cut at its top-level commas."""
    parts, last = [], 0
    for i, token, depth in _tokens(text):
        if depth == 0 and token == ",":
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def closing_paren(text: str, open_index: int) -> int:
    """Index of the parenthesis closing the one at ``open_index``, or -1."""
    for i, token, depth in _tokens(text, open_index):
        if token == ")" and depth == 0:
            return i
    return -1


def count_placeholders(text: str) -> int:
    """``%s`` placeholders in Django's SQL (a literal percent sign is written ``%%``)."""
    count = i = 0
    while (i := text.find("%", i)) != -1:
        nxt = text[i + 1:i + 2]
        if nxt == "s":
            count += 1
        i += 2
    return count


@dataclass
class Assignment:
    column: str
    expr: str
    params: list[Any]

    @property
    def constant(self) -> bool:
        """One value for every row (``"col" = %s`` or ``= NULL``), not an expression of the row."""
        return self.expr in ("%s", "NULL")


@dataclass
class Update:
    table: str
    quoted_table: str
    assignments: list[Assignment]
    #: The statement's ``WHERE ...`` (and MySQL's ``ORDER BY ...``) and its parameters.
    tail: str
    tail_params: list[Any]


@dataclass
class Insert:
    table: str
    columns: list[str]
    rows: int | None
    returning: list[str] = field(default_factory=list)
    on_conflict: str | None = None
    #: Values per column, when every row sends each column as a plain parameter.
    values: dict[str, list[Any]] | None = None


def statement_table(sql: str) -> tuple[str, str] | None:
    """``("update" | "insert", table)`` for an UPDATE or INSERT statement, else None."""
    match = _UPDATE.match(sql)
    if match:
        return "update", unquote(match.group("table"))
    match = _INSERT.match(sql)
    if match:
        return "insert", unquote(match.group("table"))
    return None


def parse_update(sql: str, params: Any) -> Update | None:
    """The parts of an ORM ``UPDATE``; None for a statement in another shape."""
    match = _UPDATE.match(sql)
    if not match or match.group("table")[0] not in "\"`" or not isinstance(params, (list, tuple)):
        return None
    body_start = match.end()
    ends = [i for i in (find_top_level(sql, " WHERE ", body_start), find_top_level(sql, " ORDER BY ", body_start)) if i >= 0]
    end = min(ends) if ends else len(sql)
    set_part = sql[body_start:end]
    if any(find_top_level(set_part, word) >= 0 for word in (" FROM ", " RETURNING ", " LIMIT ")):
        return None  # PostgreSQL's UPDATE ... FROM and friends: not the ORM's
    tail = sql[end:]
    if find_top_level(tail, " RETURNING ") >= 0 or find_top_level(tail, " LIMIT ") >= 0:
        return None
    assignments = []
    offset = 0
    for part in split_top_level(set_part):
        parsed = _ASSIGNMENT.fullmatch(part)
        if not parsed:
            return None
        expr = parsed.group("expr").strip()
        n = count_placeholders(expr)
        assignments.append(Assignment(unquote(parsed.group("column")), expr, list(params[offset:offset + n])))
        offset += n
    if count_placeholders(tail) != len(params) - offset:
        return None
    return Update(unquote(match.group("table")), match.group("table"), assignments, tail, list(params[offset:]))


def _conflict(sql: str, modifier: str | None) -> str | None:
    upper = sql.upper()
    if modifier:
        return "ignore"
    if " ON CONFLICT" in upper:
        return "update" if "DO UPDATE" in upper else "ignore"
    if " ON DUPLICATE KEY UPDATE " in upper:
        return "update"
    return None


def _values(columns: list[str], body: str, params: Any) -> tuple[int | None, dict[str, list[Any]] | None]:
    """Rows and per-column values of ``VALUES (...), (...)`` or ``SELECT * FROM UNNEST(...)``."""
    if body.upper().startswith("SELECT * FROM UNNEST("):  # PostgreSQL: one array parameter per column
        if len(params) == len(columns) and all(isinstance(p, (list, tuple)) for p in params):
            return len(params[0]) if params else 0, {c: list(p) for c, p in zip(columns, params, strict=True)}
        return None, None
    if not body.upper().startswith("VALUES"):
        return None, None
    first_open = body.find("(")
    first_close = closing_paren(body, first_open) if first_open >= 0 else -1
    if first_close < 0:
        return None, None
    row_sql = body[first_open + 1:first_close]
    per_row = count_placeholders(row_sql)
    if per_row == 0:
        return None, None
    rows = len(params) // per_row
    items = [item.strip() for item in split_top_level(row_sql)]
    if len(items) != len(columns) or any(item != "%s" for item in items):
        return rows, None
    width = len(columns)
    return rows, {c: [params[r * width + j] for r in range(rows)] for j, c in enumerate(columns)}


def parse_insert(sql: str, params: Any) -> Insert | None:
    """The parts of an ORM ``INSERT``; None for a statement in another shape."""
    match = _INSERT.match(sql)
    if not match or not isinstance(params, (list, tuple)):
        return None
    rest = sql[match.end():]
    if not rest.startswith("("):
        return None
    close = closing_paren(rest, 0)
    if close < 0:
        return None
    columns = [unquote(c.strip()) for c in rest[1:close].split(",")]
    body = rest[close + 1:].strip()
    returning: list[str] = []
    at = find_top_level(body, " RETURNING ")
    if at >= 0:
        returning = [unquote(c.strip().rsplit(".", 1)[-1]) for c in split_top_level(body[at + len(" RETURNING "):])]
        body = body[:at]
    for word in (" ON CONFLICT", " ON DUPLICATE KEY UPDATE "):
        cut = find_top_level(body, word)
        if cut >= 0:
            body = body[:cut]
    rows, values = _values(columns, body, params)
    return Insert(unquote(match.group("table")), columns, rows, returning, _conflict(sql, match.group("mod")), values)
