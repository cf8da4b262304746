"""Per-request audit context, carried in a context variable.

The middleware stores a cheap :class:`AuditContext` (a reference to the
request and a correlation id); everything else -- the actor, the client IP,
the session -- is read from the request when an event is emitted, so the
middleware's position in ``MIDDLEWARE`` does not matter and requests that emit
nothing pay nothing. Context variables follow the request into async code and
into ``sync_to_async`` threads; :func:`propagate` and :func:`use_context` carry
it into thread pools and task queues.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from rail_django.capture.client_ip import peer_is_trusted, resolve_client_ip
from rail_django.conf import get_config

F = TypeVar("F", bound=Callable[..., Any])

#: Longest user agent and path stored; longer values are cut.
MAX_USER_AGENT_LENGTH = 512
MAX_PATH_LENGTH = 2048

_CORRELATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_UNSET: Any = object()

_current: ContextVar[AuditContext | None] = ContextVar("rail_django_audit_context", default=None)


def new_correlation_id() -> str:
    """A new random id: 32 hex digits (128 random bits, the length of ``uuid.uuid4().hex``).

    Made on every request, so the cheapest random text there is (no ``UUID`` object).
    """
    return os.urandom(16).hex()


def accept_correlation_id(value: str | None) -> str:
    """Return ``value`` when it is a short, well-formed id, else a new id."""
    if value and _CORRELATION_ID.fullmatch(value):  # not match(): "$" would accept a trailing newline
        return value
    return new_correlation_id()


def incoming_id_allowed(meta: Any) -> bool:
    """Whether this request's sender may choose its correlation id (``RAIL_DJANGO_ACCEPT_REQUEST_ID_FROM``).

    By default only a trusted proxy may: a client that picks its own id could
    slip events into another request's "same correlation id" view.
    """
    config = get_config()
    if config.accept_request_id_from == "any":
        return True
    if config.accept_request_id_from == "trusted_proxies":
        return peer_is_trusted(meta, config.trusted_proxies)
    return False


def user_agent_text(value: Any) -> str:
    """The ``User-Agent`` as sent, cut to :data:`MAX_USER_AGENT_LENGTH`.

    WSGI and ASGI hand headers over decoded as latin-1, so a UTF-8 agent
    arrives as mojibake (``"Ã¼"`` for ``"ü"``); it is decoded again as UTF-8
    when its bytes are UTF-8, and kept as given otherwise.
    """
    text = value if isinstance(value, str) else str(value or "")
    if not text.isascii():
        try:
            text = text.encode("latin-1").decode("utf-8")
        except UnicodeError:  # not latin-1-decoded bytes, or not UTF-8: keep what came
            pass
    return text[:MAX_USER_AGENT_LENGTH]


def hash_session_key(session_key: str | None) -> str | None:
    """A session key is a bearer secret: store a digest that still groups events."""
    if not session_key:
        return None
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def describe_user(user: Any) -> tuple[str | None, str | None]:
    """``(user_id, username)`` of a user object, or ``(None, None)`` for anonymous."""
    if user is None:
        return None, None
    try:
        if getattr(user, "is_anonymous", False) or getattr(user, "is_authenticated", True) is False:
            return None, None
        pk = getattr(user, "pk", None)
        get_username = getattr(user, "get_username", None)
        username = get_username() if callable(get_username) else getattr(user, "username", None)
    except Exception:  # a broken custom user model must not break emit
        return None, None
    return (str(pk) if pk is not None else None), (str(username)[:150] if username is not None else None)


#: Functions ``f(request) -> dict | None`` whose result is added to the context of every event
#: emitted in a request (installed in ``ready()`` by integrations, e.g. django-hijack's impersonator).
_request_enrichers: list[Callable[[Any], dict[str, Any] | None]] = []


def add_request_enricher(enricher: Callable[[Any], dict[str, Any] | None]) -> None:
    """Add ``enricher(request)`` to every event's context; runs only when an event is built."""
    if enricher not in _request_enrichers:
        _request_enrichers.append(enricher)


class AuditContext:
    """What the audit trail knows about the code that is running now.

    ``tags`` are facts about the running unit of work (the management command,
    the Celery task) added to the context of every event it emits.
    """

    __slots__ = ("request", "correlation_id", "tags", "_actor", "_snapshot", "_client_ip")

    def __init__(
        self,
        request: Any = None,
        correlation_id: str | None = None,
        snapshot: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.request = request
        self.correlation_id = correlation_id or new_correlation_id()
        self.tags = tags
        self._actor: Any = _UNSET
        self._snapshot = snapshot
        self._client_ip: tuple[str | None, str | None] | None = None

    @classmethod
    def for_request(cls, request: Any) -> AuditContext:
        """The context of ``request``: an incoming request id is kept when its sender may set it."""
        meta = request.META
        incoming = meta.get("HTTP_X_REQUEST_ID") or meta.get("HTTP_X_CORRELATION_ID")
        if incoming and not incoming_id_allowed(meta):
            incoming = None
        return cls(request, accept_correlation_id(incoming))

    def bind_actor(self, user: Any) -> None:
        self._actor = user

    def actor(self) -> tuple[str | None, str | None]:
        """The acting user, read now: a bound actor, else ``request.user``."""
        if self._actor is not _UNSET:
            return describe_user(self._actor)
        if self.request is not None:
            return describe_user(getattr(self.request, "user", None))
        if self._snapshot is not None:
            return self._snapshot.get("user_id"), self._snapshot.get("username")
        return None, None

    def client_ip(self) -> tuple[str | None, str | None]:
        """``(client_ip, remote_addr)``; ``(None, None)`` when IP capture is off."""
        config = get_config()
        if not config.capture_client_ip:
            return None, None
        if self._client_ip is None:
            if self.request is not None:
                self._client_ip = resolve_client_ip(self.request.META, config.trusted_proxies)
            elif self._snapshot is not None:
                self._client_ip = (self._snapshot.get("client_ip"), self._snapshot.get("remote_addr"))
            else:
                self._client_ip = (None, None)
        return self._client_ip

    def request_facts(self) -> dict[str, Any]:
        """User agent, path, method and hashed session of the request."""
        if self.request is None:
            snap = self._snapshot or {}
            facts = {k: snap.get(k) for k in ("user_agent", "request_path", "request_method", "session_id")}
            facts["user_agent"] = facts["user_agent"] or ""
            return facts
        request = self.request
        session = getattr(request, "session", None)
        return {
            "user_agent": user_agent_text(request.META.get("HTTP_USER_AGENT", "")),
            "request_path": str(getattr(request, "path", ""))[:MAX_PATH_LENGTH],
            "request_method": str(getattr(request, "method", "") or "")[:16],
            "session_id": hash_session_key(getattr(session, "session_key", None)),
        }

    def extra_context(self) -> dict[str, Any] | None:
        """What every event of this context adds to its ``context``: the tags, then the request enrichers'."""
        extra = dict(self.tags) if self.tags else None
        if self.request is not None and _request_enrichers:
            for enricher in _request_enrichers:
                try:
                    found = enricher(self.request)
                except Exception:  # an integration's failure must not cost the event
                    found = None
                if found:
                    extra = {**(extra or {}), **found}
        elif self._snapshot is not None and self._snapshot.get("tags"):
            extra = {**self._snapshot["tags"], **(extra or {})}
        return extra

    def snapshot(self) -> dict[str, Any]:
        """Resolved, JSON-serialisable facts to re-create this context elsewhere."""
        user_id, username = self.actor()
        client_ip, remote_addr = self.client_ip()
        snapshot = {
            "correlation_id": self.correlation_id,
            "user_id": user_id,
            "username": username,
            "client_ip": client_ip,
            "remote_addr": remote_addr,
            **self.request_facts(),
        }
        extra = self.extra_context()
        if extra:
            snapshot["tags"] = extra
        return snapshot


def get_current_context() -> AuditContext | None:
    """The :class:`AuditContext` of the running request or task, if any."""
    return _current.get()


def context_for_request(request: Any) -> AuditContext:
    """The context the middleware made for ``request``, or a fresh one."""
    ctx = getattr(request, "_rail_django_audit_context", None)
    if ctx is None:
        current = _current.get()
        if current is not None and current.request is request:
            return current
        ctx = AuditContext.for_request(request)
    return ctx


def attach_context(request: Any, correlation_id: str | None = None) -> AuditContext:
    """Give ``request`` the context the middleware would, with an id your code chose.

    For requests made in code (``RequestFactory`` in a seeding script, an
    internal dispatch) whose events should share a known correlation id;
    ``correlation_id`` is used when well-formed, else a new one is made.
    """
    ctx = AuditContext(request, accept_correlation_id(correlation_id))
    request._rail_django_audit_context = ctx
    return ctx


def set_current_context(ctx: AuditContext | None):
    """Install ``ctx``; returns the token for :func:`reset_current_context`."""
    return _current.set(ctx)


def reset_current_context(token) -> None:
    _current.reset(token)


def bind_actor(user: Any) -> None:
    """Record ``user`` as the actor of every event emitted from now on in this request.

    For token-authenticated APIs (JWT, DRF tokens, GraphQL login mutations),
    which never populate ``request.user`` through Django's session login.
    Outside a request, use it inside ``with use_context(...)``.
    """
    ctx = _current.get()
    if ctx is None:
        ctx = AuditContext()
        _current.set(ctx)
    ctx.bind_actor(user)


def capture_context() -> dict[str, Any] | None:
    """A JSON-serialisable snapshot of the current context (for Celery task kwargs)."""
    ctx = _current.get()
    return ctx.snapshot() if ctx is not None else None


@contextmanager
def use_context(snapshot: dict[str, Any] | None = None, *, tags: dict[str, Any] | None = None) -> Iterator[AuditContext]:
    """Run a block with the context described by ``snapshot`` (from :func:`capture_context`).

    With no snapshot, starts a fresh context with a new correlation id, e.g.
    for a management command or a task that is not tied to a request. The
    running context's tags (the command, the task) carry on, with ``tags`` over them.
    """
    snapshot = snapshot or {}
    outer = _current.get()
    inherited = {**(outer.tags or {}), **(tags or {})} if outer is not None else tags
    ctx = AuditContext(
        correlation_id=accept_correlation_id(snapshot.get("correlation_id")), snapshot=snapshot, tags=inherited or None
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def propagate(func: F) -> F:
    """Wrap ``func`` so it runs with the caller's audit context, e.g. in a thread pool.

    ``executor.submit(propagate(work), item)`` keeps the request's correlation id
    and actor on the events ``work`` emits.
    """
    snapshot = capture_context()

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with use_context(snapshot):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@functools.lru_cache(maxsize=1024)
def describe_user_agent(user_agent: str) -> dict[str, Any]:
    """Browser, OS and device of a user-agent string (parsed once, then cached)."""
    from user_agents import parse

    parsed = parse(user_agent or "")
    return {
        "browser": f"{parsed.browser.family} {parsed.browser.version_string}".strip(),
        "os": f"{parsed.os.family} {parsed.os.version_string}".strip(),
        "device": parsed.device.family,
        "is_mobile": parsed.is_mobile,
        "is_bot": parsed.is_bot,
    }
