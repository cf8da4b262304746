"""The demo's people, orders and a realistic hour of audit events (used by ``manage.py demo_setup``).

Past events are built by rail-django's own pipeline (``security.build``:
enrichment from a request, redaction) with their time moved into the last
hour, then delivered to the configured sinks in time order, so that with a
tamper-evidence key (``AUDIT_INTEGRITY_KEY``) they are sealed as history that
happened in that order. With a key, the hour is seeded only when no stored
event is newer than its start: back-dating events behind newer ones is exactly
what ``audit_management verify`` reports as tampering. The brute-force burst at the
end is real: failed ``authenticate()`` calls fire Django's
``user_login_failed`` signal, rail-django records each failure and its
failed-login counters raise the alerts by themselves.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.test import RequestFactory
from django.utils import timezone

from orders.models import Order
from rail_django.capture.context import attach_context
from rail_django.delivery.dispatcher import dispatcher
from rail_django.extensions.audit.models import get_audit_event_model
from rail_django.integrity.chain import integrity_key
from rail_django.security import EventType, Outcome, security
from rail_django.security.signals import security_alert

ROLES = {
    "Clerks": ["view_order", "approve_order"],
    "Managers": ["view_order", "approve_order", "delete_order"],
}
PEOPLE = [
    # username, role, office IP, browser
    ("alice", "Clerks", "198.51.100.23", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("bob", "Managers", "198.51.100.57",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
]
ADMIN = ("admin", "192.0.2.10",
         "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
ATTACKER_IP = "203.0.113.66"
ATTACKER_AGENT = "python-requests/2.31.0"
BURST = ["admin"] * 6 + ["root"] * 3 + ["alice"] * 3
ORDERS = [
    ("A-1001", "Northwind Traders", "1250.00"),
    ("A-1002", "Contoso Ltd", "89.90"),
    ("A-1003", "Fabrikam Inc", "4300.00"),
    ("A-1004", "Tailspin Toys", "312.45"),
    ("A-1005", "Wide World Importers", "77.00"),
    ("A-1006", "Adventure Works", "1999.99"),
    ("A-1007", "Litware Inc", "640.10"),
    ("A-1008", "Proseware", "15.00"),
]
SEED_PREFIX = "demo-"


@dataclass
class Account:
    username: str
    password: str
    role: str


def new_password() -> str:
    return secrets.token_urlsafe(12)


def setup_people(password: str | None = None) -> list[Account]:
    """Create (or refresh) the admin and one user per role; every run sets new passwords (or ``password``)."""
    User = get_user_model()
    groups = {}
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(Permission.objects.filter(content_type__app_label="orders", codename__in=codenames))
        groups[name] = group
    accounts = []
    admin, _ = User.objects.get_or_create(username=ADMIN[0], defaults={"email": "admin@example.com"})
    admin.is_staff = admin.is_superuser = True
    accounts.append(_set_password(admin, password, "superuser"))
    for username, role, _ip, _agent in PEOPLE:
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
        user.groups.set([groups[role]])
        accounts.append(_set_password(user, password, role))
    return accounts


def _set_password(user: Any, password: str | None, role: str) -> Account:
    password = password or new_password()
    user.set_password(password)
    user.save()
    return Account(user.get_username(), password, role)


def setup_orders() -> int:
    """Create the demo orders when there are none; returns how many were created."""
    if Order.objects.exists():
        return 0
    Order.objects.bulk_create(Order(number=n, customer=c, amount=Decimal(a)) for n, c, a in ORDERS)
    return len(ORDERS)


def recently_seeded(now: dt.datetime | None = None) -> bool:
    """Whether a seeded hour already ends within the last hour (so running demo_setup again adds nothing)."""
    now = now or timezone.now()
    model = get_audit_event_model()
    return model.objects.filter(timestamp__gte=now - dt.timedelta(hours=1), correlation_id__startswith=SEED_PREFIX).exists()


def seeding_would_back_date(now: dt.datetime | None = None) -> bool:
    """With a tamper-evidence key, whether a stored event is newer than the start of the hour to seed."""
    if integrity_key() is None:
        return False
    start = (now or timezone.now()) - dt.timedelta(hours=1)
    return get_audit_event_model().objects.filter(timestamp__gt=start).exists()


class _Seeder:
    def __init__(self, now: dt.datetime, rng: random.Random) -> None:
        self.now = now
        self.rng = rng
        self.factory = RequestFactory()
        self.events: list[Any] = []

    def visit(self, user: Any, ip: str, agent: str, method: str, path: str) -> Any:
        """A request of one visit: its events share a correlation id, as a real request's do."""
        request = self.factory.generic(method, path, REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
        # Chosen here, not by a header: a client's X-Request-ID is not believed (docs/configuration.md).
        attach_context(request, f"{SEED_PREFIX}{uuid.UUID(int=self.rng.getrandbits(128)).hex}")
        request.user = user if user is not None else AnonymousUser()
        return request

    def event(self, minutes_ago: float, event_type: EventType, request: Any, **kwargs: Any) -> None:
        event = security.build(event_type, request=request, **kwargs)
        event.timestamp = self.now - dt.timedelta(minutes=minutes_ago)
        self.events.append(event)

    def working_session(self, user: Any, ip: str, agent: str, start: float, manager: bool) -> None:
        """Log in (after a typo now and then), browse, approve, maybe delete, log out."""
        t = start
        if self.rng.random() < 0.5:
            self.event(t + 0.4, EventType.AUTH_LOGIN_FAILURE, self.visit(None, ip, agent, "POST", "/accounts/login/"),
                       outcome=Outcome.FAILURE, action="Login attempt failed", error="Invalid credentials",
                       context={"username_attempted": user.get_username()})
        self.event(t, EventType.AUTH_LOGIN_SUCCESS, self.visit(user, ip, agent, "POST", "/accounts/login/"),
                   action="User logged in", user=user)
        for _ in range(self.rng.randint(6, 12)):
            t -= self.rng.uniform(0.3, 2.0)
            if t <= 0.5:
                break
            kind = self.rng.random()
            order = self.rng.choice(ORDERS)
            order_pk = ORDERS.index(order) + 1
            if kind < 0.55:
                self.event(t, EventType.DATA_READ, self.visit(user, ip, agent, "GET", "/orders/"),
                           action="Viewed order list", resource_type="orders.order")
            elif kind < 0.8:
                self.event(t, EventType.DATA_UPDATE, self.visit(user, ip, agent, "POST", "/graphql/"),
                           action="GraphQL mutation approveOrder", resource_type="graphql_operation",
                           resource_name="approveOrder", context={"operation_type": "mutation", "root_fields": ["approveOrder"],
                                                                  "variables": {"id": order[0]}})
            elif kind < 0.9:
                self.event(t, EventType.UI_ACTION, self.visit(user, ip, agent, "POST", "/graphql/"),
                           action="Frontend: export Order", context={"app_name": "orders", "model_name": "Order",
                                                                     "operation": "export", "component": "OrderListPage"})
            elif manager:
                self.event(t, EventType.DATA_DELETE, self.visit(user, ip, agent, "POST", f"/orders/{order_pk}/delete/"),
                           action="Deleted order", resource_type="orders.order", resource_name=order[0])
            else:
                self.event(t, EventType.AUTHZ_PERMISSION_DENIED, self.visit(user, ip, agent, "POST", f"/orders/{order_pk}/delete/"),
                           outcome=Outcome.DENIED, action="Delete order refused", resource_type="orders.order",
                           resource_name=order[0], context={"permission": "orders.delete_order"})
        self.event(max(t - 0.2, 0.3), EventType.AUTH_LOGOUT, self.visit(user, ip, agent, "POST", "/accounts/logout/"),
                   action="User logged out", user=user)

    def scanner(self, start: float) -> None:
        """Someone probing the GraphQL endpoint."""
        agent = "sqlmap/1.8.2#stable (https://sqlmap.org)"
        ip = "203.0.113.200"
        for i, (event_type, action) in enumerate([
            (EventType.QUERY_BLOCKED_INTROSPECTION, "Introspection query blocked"),
            (EventType.QUERY_BLOCKED_DEPTH, "Query depth 23 over the limit of 10"),
            (EventType.QUERY_INJECTION_ATTEMPT, "Suspicious input in variable 'id'"),
            (EventType.RATE_LIMIT_EXCEEDED, "Too many requests"),
        ]):
            self.event(start - i * 0.3, event_type, self.visit(None, ip, agent, "POST", "/graphql/"),
                       outcome=Outcome.BLOCKED, action=action, context={"variables": {"id": "1 OR 1=1"}})


def seed_hour(now: dt.datetime | None = None, seed: int = 2024) -> int:
    """Deliver a realistic hour of past events ending ``now``; returns how many."""
    now = now or timezone.now()
    rng = random.Random(seed)
    seeder = _Seeder(now, rng)
    User = get_user_model()
    people = [(User.objects.get(username=name), ip, agent, role == "Managers") for name, role, ip, agent in PEOPLE]
    admin = User.objects.get(username=ADMIN[0])
    for start in (58, 41, 23, 9):
        for user, ip, agent, manager in people:
            seeder.working_session(user, ip, agent, start - rng.uniform(0, 4), manager)
    seeder.working_session(admin, ADMIN[1], ADMIN[2], 35, True)
    seeder.scanner(17)
    # Stored (and sealed) in the order the events happened, as a real hour would be.
    for event in sorted(seeder.events, key=lambda e: e.timestamp):
        dispatcher.deliver(event)
    security.flush(timeout=30)
    return len(seeder.events)


def brute_force_burst() -> tuple[int, int]:
    """Real failed logins from one IP; returns ``(failed logins, alerts raised)``."""
    alerts: list[Any] = []

    def collect(sender: Any, **kwargs: Any) -> None:
        alerts.append(kwargs.get("rule"))

    security_alert.connect(collect, dispatch_uid="demo_setup.collect_alerts")
    try:
        factory = RequestFactory()
        for i, username in enumerate(BURST):
            request = factory.post("/accounts/login/", REMOTE_ADDR=ATTACKER_IP, HTTP_USER_AGENT=ATTACKER_AGENT)
            authenticate(request, username=username, password=f"guess-{i}-{secrets.token_hex(4)}")
    finally:
        security_alert.disconnect(dispatch_uid="demo_setup.collect_alerts")
    security.flush(timeout=30)
    return len(BURST), len(alerts)
