"""Management commands: every event a ``manage.py`` command emits names it in ``context.command``.

Django sends no signal when a command starts, but ``manage.py`` (and
``django-admin``, ``python -m django``) call ``django.setup()`` -- and so
``ready()`` -- just before running the command named on the command line.
:func:`install_for_command_line` then installs, for the main thread, an audit
context tagged ``{"command": name, "os_user": login}``: one correlation id
for the run, and the command on every event it emits (a password changed
by ``changepassword``, the account ``createsuperuser`` makes). Inside a web
request the request's own context wins; under any other program (a WSGI
server, a Celery worker, pytest) nothing is installed.
"""

from __future__ import annotations

import getpass
import os
import sys

from rail_django.capture.context import AuditContext, get_current_context, set_current_context

_LAUNCHERS = ("manage.py", "django-admin", "django-admin.py")


def command_from_argv(argv: list[str]) -> str | None:
    """The command ``argv`` runs, when it is a Django command line (else ``None``)."""
    if len(argv) < 2:
        return None
    launcher = os.path.basename(argv[0])
    by_module = launcher == "__main__.py" and os.path.basename(os.path.dirname(argv[0])) == "django"
    if launcher not in _LAUNCHERS and not by_module:
        return None
    name = argv[1]
    if not name or name.startswith("-") or name in ("help", "version"):
        return None
    return name[:100]


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): not worth failing over
        return None


def install_for_command_line(argv: list[str] | None = None) -> AuditContext | None:
    """Tag this thread's audit context with the command being run, if this process is one."""
    name = command_from_argv(sys.argv if argv is None else argv)
    if name is None or get_current_context() is not None:
        return None
    tags = {"command": name}
    user = _os_user()
    if user:
        tags["os_user"] = user
    ctx = AuditContext(tags=tags)
    set_current_context(ctx)  # for the life of the command, in the thread that runs it
    return ctx
