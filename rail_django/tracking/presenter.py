"""An audit row as the history page shows it: who, when, what, and the diff as (field, before, after) lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Ids shown for one bulk event on a history page (the event itself keeps up to 1,000).
MAX_IDS_SHOWN = 20


@dataclass
class DiffLine:
    field: str
    before: str
    after: str


@dataclass
class HistoryEntry:
    row: Any
    event_type: str
    summary: str
    lines: list[DiffLine] = field(default_factory=list)

    @property
    def actor(self) -> str:
        return self.row.username or self.row.user_id or ""


def show(value: Any) -> str:
    """A stored value as text (the template escapes it): strings as they are, the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _change_lines(changes: dict[str, Any]) -> list[DiffLine]:
    lines = []
    for name, value in changes.items():
        if isinstance(value, list) and len(value) == 2:
            lines.append(DiffLine(name, show(value[0]), show(value[1])))
        elif isinstance(value, dict):  # a JSON field: one line per JSON Pointer path
            for path, pair in value.items():
                before, after = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
                lines.append(DiffLine(f"{name}{path}", show(before), show(after)))
        else:  # masked whole by the redaction pass
            lines.append(DiffLine(name, show(value), show(value)))
    return lines


def _m2m_lines(m2m: dict[str, Any]) -> list[DiffLine]:
    lines = []
    for name, value in m2m.items():
        if not isinstance(value, dict):
            lines.append(DiffLine(name, show(value), show(value)))
            continue
        removed, added = value.get("removed") or [], value.get("added") or []
        lines.append(DiffLine(name, "removed: " + ", ".join(map(str, removed)) if removed else "",
                              "added: " + ", ".join(map(str, added)) if added else ""))
    return lines


def _bulk(ctx: dict[str, Any], object_id: str) -> tuple[str, list[DiffLine]]:
    count = ctx.get("count")
    ids = [str(i) for i in ctx.get("ids") or []]
    shown = ", ".join(ids[:MAX_IDS_SHOWN]) + (" …" if len(ids) > MAX_IDS_SHOWN else "")
    summary = f"Bulk {ctx.get('operation', 'write')} of {count} row(s): {shown}"
    lines = [DiffLine(name, "", show(value)) for name, value in (ctx.get("changes") or {}).items()]
    row = (ctx.get("rows") or {}).get(object_id)
    if isinstance(row, dict):
        lines += [DiffLine(name, "", show(value)) for name, value in row.items()]
    return summary, lines


_SUMMARIES = {"data.create": "Created", "data.update": "Changed", "data.delete": "Deleted"}


def describe(row: Any, object_id: str) -> HistoryEntry:
    """The history-page entry for one stored event about the object ``object_id``."""
    data = row.additional_data or {}
    ctx = data.get("context") or {}
    if row.event_type == "data.bulk":
        summary, lines = _bulk(ctx, object_id)
        return HistoryEntry(row, row.event_type, summary, lines)
    lines = _change_lines(ctx.get("changes") or {}) + _m2m_lines(ctx.get("m2m") or {})
    summary = _SUMMARIES.get(row.event_type) or data.get("action") or row.event_type
    return HistoryEntry(row, row.event_type, summary, lines)
