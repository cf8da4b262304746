"""``python manage.py demo_setup``: demo users, orders and an hour of audit events (``make demo`` runs it)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from orders import demo


class Command(BaseCommand):
    help = (
        "Create the demo admin and one user per role (new passwords, printed), the demo orders, and -- unless "
        "done within the last hour -- a realistic hour of audit events ending in a brute-force burst that raises "
        "alerts. Safe to run again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", help="use this password for every demo user instead of new random ones")
        parser.add_argument("--no-seed", action="store_true", help="create users and orders only")
        parser.add_argument("--reseed", action="store_true", help="seed another hour even if one was seeded recently")
        parser.add_argument("--port", type=int, default=8000, help="the port `make demo` serves on, for the printed links")

    def handle(self, *args: Any, password: str | None = None, no_seed: bool = False, reseed: bool = False,
               port: int = 8000, **options: Any) -> None:
        if password is not None and len(password) < 8:
            raise CommandError("--password must be at least 8 characters long")
        if no_seed and reseed:
            raise CommandError("--no-seed and --reseed contradict each other")
        back_dating = not no_seed and demo.seeding_would_back_date()
        will_seed = not no_seed and not back_dating and (reseed or not demo.recently_seeded())
        # The seeded hour ends "now": with a tamper-evidence key, setting up the demo's own accounts and orders
        # (account and tracking events at "now") would put newer events before it, so they go unrecorded then.
        with override_settings(GRAPHQL_ENABLE_AUDIT_LOGGING=False) if will_seed else nullcontext():
            accounts = demo.setup_people(password)
            created = demo.setup_orders()

        seeded = None
        if will_seed:
            count = demo.seed_hour()
            attempts, alerts = demo.brute_force_burst()
            seeded = (count, attempts, alerts)

        site = f"http://127.0.0.1:{port}"
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write("")
        self.stdout.write(f"  Open {site}/ and log in as:")
        for account in accounts:
            self.stdout.write(f"    {account.username:<7} {account.password:<18} {describe(account.role)}")
        if password is None:
            self.stdout.write("  (new passwords each time demo_setup runs)")
        self.stdout.write("")
        if created:
            self.stdout.write(f"  Created {created} orders.")
        if seeded:
            count, attempts, alerts = seeded
            self.stdout.write(
                f"  Seeded {count} events over the last hour, then {attempts} failed logins from "
                f"{demo.ATTACKER_IP} that raised {alerts} security alert(s)."
            )
        elif back_dating:
            self.stdout.write(
                "  Not seeding: the integrity chain holds events newer than the hour to seed, and back-dated "
                "events would (rightly) fail `audit_management verify`. Seed an empty database, or before "
                "setting the integrity key."
            )
        elif not no_seed:
            self.stdout.write("  Events were seeded less than an hour ago; not seeding again (use --reseed).")
        self.stdout.write(f"  Audit events:       {site}/admin/rail_django/auditeventmodel/")
        self.stdout.write(f"  Security dashboard: {site}/admin/rail_django/auditeventmodel/dashboard/?window=1h")
        self.stdout.write(f"  GraphQL:            {site}/graphql/")


def describe(role: str) -> str:
    return {
        "superuser": "superuser: the admin, the audit events and the security dashboard",
        "Clerks": "Clerks: view and approve orders (deleting is refused, and recorded)",
        "Managers": "Managers: view, approve and delete orders",
    }.get(role, role)
