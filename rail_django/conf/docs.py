"""The settings tables of ``docs/configuration.md``, written from the registry.

``python -m rail_django.conf.docs docs/configuration.md`` rewrites every
table between its markers; ``--check`` only reports (exit 1) when the file
and the registry differ. A test runs the check, so the docs cannot drift.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from rail_django.conf.registry import SECTIONS, SETTINGS, Setting

BEGIN = "<!-- settings table: {section} (written by: python -m rail_django.conf.docs docs/configuration.md) -->"
END = "<!-- end of settings table -->"
_HEADER = "| setting | default | effect | check |\n|---|---|---|---|"


def literal(value: Any) -> str:
    """``value`` as Python source, strings in double quotes (as the docs write them)."""
    if isinstance(value, str) and '"' not in value and "\\" not in value:
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def row(setting: Setting) -> str:
    default = setting.default_doc or f"`{literal(setting.default_value())}`"
    ids = ", ".join(i.removeprefix("rail_django.") for i in (setting.check_id, *setting.other_ids))
    return f"| `{setting.name}` | {default} | {setting.doc} | {ids} |"


def table(section: str) -> str:
    """The markdown table of one section, with its markers."""
    rows = "\n".join(row(s) for s in SETTINGS if s.section == section)
    return f"{BEGIN.format(section=section)}\n{_HEADER}\n{rows}\n{END}"


def render(text: str) -> str:
    """``text`` with each section's table replaced by the registry's; raises ``ValueError`` on a missing marker."""
    for section in SECTIONS:
        begin = re.escape(BEGIN.format(section=section))
        match = re.search(f"{begin}\n.*?{re.escape(END)}", text, re.S)
        if match is None:
            raise ValueError(f"no settings table marker for section {section!r}")
        text = text[: match.start()] + table(section) + text[match.end() :]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="docs/configuration.md")
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    new = render(text)
    if new == text:
        return 0
    if args.check:
        print(f"{args.path} differs from the settings registry; run: python -m rail_django.conf.docs {args.path}")
        return 1
    args.path.write_text(new, encoding="utf-8")
    print(f"{args.path} rewritten from the settings registry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
