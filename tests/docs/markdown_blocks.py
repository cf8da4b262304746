"""Fenced code blocks of the docs pages, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
# A fence may be indented (a block inside a list item); its lines lose that indentation.
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)\n(?P<code>.*?)^(?P=indent)```\s*$", re.MULTILINE | re.DOTALL
)


def _dedent(code: str, indent: str) -> str:
    return "".join(line.removeprefix(indent) for line in code.splitlines(keepends=True))


def blocks(page: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block in ``docs/<page>``, in order."""
    return [(m["lang"], _dedent(m["code"], m["indent"])) for m in _FENCE.finditer((DOCS / page).read_text())]


def block(page: str, lang: str, containing: str) -> str:
    """The one block of ``page`` in ``lang`` that contains ``containing``."""
    found = [code for block_lang, code in blocks(page) if block_lang == lang and containing in code]
    assert len(found) == 1, f"{page}: expected one {lang} block containing {containing!r}, found {len(found)}"
    return found[0]
