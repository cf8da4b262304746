"""Where an export goes: standard output, or a file replaced atomically and readable by its owner only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from django.core.management.base import CommandError

#: An export holds audit data (users, addresses, what they did): like the journal, owner-only.
FILE_MODE = 0o600


@contextmanager
def open_output(path: str | None, stdout: TextIO) -> Iterator[TextIO]:
    """``stdout`` for ``None``/``-``; else a temporary file beside ``path`` (mode 0600), moved into place on success."""
    if path in (None, "-"):
        yield stdout
        return
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"--output {path!r} is a directory")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        temporary.unlink(missing_ok=True)  # a leftover of a killed export: O_EXCL below must create it anew
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise CommandError(f"cannot write --output {path!r}: {exc.strerror or exc}") from None
    try:
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
