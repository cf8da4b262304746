"""Load scenario: the benchmark project under gunicorn, normal traffic and then a brute-force burst.

    python benchmarks/load.py                       # every variant, the defaults below (~3-4 minutes)
    python benchmarks/load.py --variants bare,rail --normal-rate 40 --burst-rate 80 --json out.json
    python benchmarks/run.py --skip-requests --skip-throughput     # the same, as a section of make bench

For each variant (``bare``, ``rail``, ``rail-sync``, ``rail-drain``, and ``axes``, ``easy-audit`` when installed) in
turn: a fresh database (PostgreSQL on 127.0.0.1 when it answers, else SQLite) is migrated, gunicorn
serves ``benchmarks.project.wsgi`` on 127.0.0.1 (``--workers``, ``--preload``), and this process drives
it with a bounded open-loop client (asyncio, one HTTP/1.1 connection per request, loopback only):

- phase ``normal``: anonymous GETs, authenticated GETs and successful logins at ``--normal-rate``
  requests/s for ``--normal-seconds``;
- phase ``burst``: the same normal traffic plus failed logins at ``--burst-rate``/s for
  ``--burst-seconds``, from ``--burst-ips`` client addresses (``X-Forwarded-For``, the proxy
  127.0.0.1 being trusted in every variant's own setting) against ``--burst-usernames`` usernames.

Requests are sent at their scheduled times whatever the server's answers (open loop: every variant
gets the same offered load); latency runs from the scheduled time to the last byte of the answer, so
a server that falls behind shows it in its latencies. The failed-login counters of rail-django (and
the alert markers) live in a shared Redis (``--redis``), one key prefix per run and variant.

``rail-drain`` (``AUDIT_DELIVERY = "drain"``) runs ``audit_management drain`` beside gunicorn on the
same machine, with its default ``--poll``, as a deployment would.

After the load, gunicorn is stopped (SIGTERM: its workers finish and rail-django flushes at exit; for
``rail-drain`` the drain is stopped, then ``drain --once`` delivers what the workers appended last) and
the database is checked: for rail-django every answered login is one stored event, and every
client IP and username over its failed-login threshold raised exactly one ``security.alert``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.requests_worker import AUDIT_TABLES, PASSWORD, USERNAME  # noqa: E402

VARIANTS = ["bare", "rail", "rail-sync", "rail-drain", "axes", "easy-audit"]
#: The variants that are rail-django (checked against its own events).
RAIL_VARIANTS = ("rail", "rail-sync", "rail-drain")
OPTIONAL = {"axes": "axes", "easy-audit": "easyaudit"}
NORMAL_KINDS = ("anon_get", "auth_get", "login_ok")
TRUSTED_PROXY = "127.0.0.1"
#: Issue 16: rail-django's p99 during the burst, as a ratio to bare Django's.
P99_TARGET = 1.10


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=None, help="comma-separated (default: every installed one)")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default=None,
                        help="default postgresql when it answers on 127.0.0.1:5432")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--normal-rate", type=float, default=20.0, help="normal requests/s (default 20)")
    parser.add_argument("--warmup-seconds", type=float, default=3.0,
                        help="unmeasured traffic first, failed logins included, so that every worker has "
                             "imported what it imports lazily (default 3)")
    parser.add_argument("--normal-seconds", type=float, default=8.0)
    parser.add_argument("--burst-rate", type=float, default=40.0, help="failed logins/s during the burst (default 40)")
    parser.add_argument("--burst-seconds", type=float, default=15.0)
    parser.add_argument("--burst-ips", type=int, default=40, help="client IPs of the burst (default 40)")
    parser.add_argument("--burst-usernames", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the variants' order rotates (default 1)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds any one request may take")
    parser.add_argument("--smoke", action="store_true", help="tiny load, bare, rail and rail-drain only, SQLite")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    if opts.smoke:
        opts.normal_seconds, opts.burst_seconds, opts.normal_rate, opts.burst_rate = 2.0, 3.0, 10.0, 20.0
        opts.warmup_seconds = 1.0
        opts.burst_ips, opts.burst_usernames, opts.workers = 4, 2, 2
        opts.db = opts.db or "sqlite"
        opts.variants = opts.variants or "bare,rail,rail-drain"
    if opts.workers < 1 or opts.rounds < 1 or min(opts.normal_rate, opts.burst_rate) <= 0:
        parser.error("--workers, --rounds and the rates must be positive")
    return opts


def chosen_variants(requested: str | None) -> list[str]:
    import importlib.util

    if requested:
        return [v for v in requested.split(",") if v]
    return [v for v in VARIANTS if v not in OPTIONAL or importlib.util.find_spec(OPTIONAL[v]) is not None]


# -- one variant's server -----------------------------------------------------------


def variant_env(variant: str, db: str, db_name: str, work: Path, prefix: str, redis_url: str) -> dict[str, str]:
    return {
        **os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "benchmarks.project.settings",
        "BENCH_VARIANT": variant, "BENCH_DB": db, "BENCH_DB_NAME": db_name, "BENCH_WORK_DIR": str(work),
        "BENCH_JOURNAL_DIR": str(work / "journal"), "BENCH_CACHE_URL": redis_url, "BENCH_CACHE_PREFIX": prefix,
        "BENCH_TRUSTED_PROXY": TRUSTED_PROXY,
    }


def drop_database(db: str, name: str, *, recreate: bool = False) -> None:
    """Remove the variant's database (a SQLite file, or a PostgreSQL database); ``recreate`` makes it anew."""
    if db != "postgresql":
        Path(name).unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if recreate:
            conn.execute(f'CREATE DATABASE "{name}"')


def create_database(db: str, name: str) -> None:
    drop_database(db, name, recreate=True)


def run_django(command: str, env: dict[str, str]) -> dict[str, Any]:
    """Run this file's ``prepare`` or ``verify`` in a child (one Django configuration per process)."""
    done = subprocess.run([sys.executable, __file__, command], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"load scenario: {command} failed ({env['BENCH_VARIANT']}):\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Server:
    """gunicorn serving the benchmark project for one variant."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "benchmarks.project.wsgi:application", "--preload",
             "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "60",
             "--timeout", "120", "--backlog", "2048"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        terminate(self.process)  # graceful: workers finish, rail-django flushes at exit
        self.log.close()


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, up to 90 s to finish, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Drain:
    """``audit_management drain`` beside gunicorn (rail-drain), with its default ``--poll``."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env = env
        self.log = open(work / "drain.log", "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen([sys.executable, "-m", "django", "audit_management", "drain"],
                                        cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        from rail_django.delivery.drain import drain_running  # (needs no Django settings)

        while not any(drain_running(lock.parent) for lock in Path(env["BENCH_JOURNAL_DIR"]).glob("*/drain/drain.lock")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                terminate(self.process)
                self.log.close()
                raise SystemExit(f"the drain did not start:\n{(work / 'drain.log').read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the drain (SIGTERM), then deliver what the workers appended last with ``drain --once``."""
        terminate(self.process)
        self.log.close()
        done = subprocess.run([sys.executable, "-m", "django", "audit_management", "drain", "--once"],
                              cwd=ROOT, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"load scenario: drain --once failed:\n{done.stdout}\n{done.stderr}")


# -- the client ----------------------------------------------------------------------


def http_request(method: str, path: str, port: int, *, cookies: dict[str, str] | None = None,
                 form: dict[str, str] | None = None, forwarded_for: str | None = None) -> bytes:
    body = urlencode(form).encode() if form is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             "User-Agent: rail-django-load/1.0"]
    if cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    if forwarded_for:
        lines.append(f"X-Forwarded-For: {forwarded_for}")
    if form is not None:
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(port: int, raw: bytes, timeout: float) -> tuple[int, bytes, bytes]:
    """``(status, head, body)`` of one request on its own connection."""
    async def go() -> tuple[int, bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(raw)
            await writer.drain()
            data = await reader.read()  # Connection: close -- the answer ends with the connection
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), head, body
    return await asyncio.wait_for(go(), timeout)


def set_cookies(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"set-cookie:"):
            name, _, rest = line.split(b":", 1)[1].strip().partition(b"=")
            found[name.decode()] = rest.split(b";", 1)[0].decode()
    return found


async def session(port: int) -> tuple[dict[str, str], str, dict[str, str]]:
    """``(anonymous cookies, CSRF form token, logged-in cookies)`` through the real login page."""
    proxy = {"forwarded_for": "192.0.2.250"}  # behind the proxy, every request carries the header
    status, head, body = await exchange(port, http_request("GET", "/login/", port, **proxy), 30)
    assert status == 200, status
    anonymous = set_cookies(head)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    form = {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token}
    status, head, _ = await exchange(port, http_request("POST", "/login/", port, cookies=anonymous, form=form, **proxy), 30)
    assert status == 302, f"login failed: {status}"
    return anonymous, token, {**anonymous, **set_cookies(head)}


def schedule(opts: argparse.Namespace, port: int, anonymous: dict[str, str], token: str,
             logged_in: dict[str, str], seed: int) -> list[tuple[float, str, str, int, bytes, tuple | None]]:
    """Every request of the run, the same for every variant.

    Each ``(offset in s, phase, kind, expected status, bytes, (client IP, username) of a failed login)``.
    """
    rng = random.Random(seed)
    normal_ips = [f"192.0.2.{i}" for i in range(1, 51)]
    burst_ips = [f"10.{i // 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(opts.burst_ips)]
    usernames = [USERNAME] + [f"admin{i}" for i in range(1, opts.burst_usernames)]
    plan = []
    total = opts.normal_seconds + opts.burst_seconds
    count = int(total * opts.normal_rate)
    for i in range(count):
        at = i / opts.normal_rate
        kind = rng.choices(NORMAL_KINDS, weights=(45, 45, 10))[0]
        ip = rng.choice(normal_ips)
        if kind == "anon_get":
            raw, status = http_request("GET", "/plain/", port, cookies=anonymous, forwarded_for=ip), 200
        elif kind == "auth_get":
            raw, status = http_request("GET", "/me/", port, cookies=logged_in, forwarded_for=ip), 200
        else:
            form = {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token}
            raw, status = http_request("POST", "/login/", port, cookies=anonymous, form=form, forwarded_for=ip), 302
        plan.append((at, "normal" if at < opts.normal_seconds else "burst", kind, status, raw, None))
    # Warm-up (offsets before 0, not measured): normal traffic with every fourth request a failed login.
    warmup = int(opts.warmup_seconds * opts.normal_rate)
    for i in range(warmup):
        at = -opts.warmup_seconds + i / opts.normal_rate
        if i % 4 == 3:
            who = ("198.51.100.1", "warmup")
            form = {"username": who[1], "password": "guess", "csrfmiddlewaretoken": token}
            raw = http_request("POST", "/login/", port, cookies=anonymous, form=form, forwarded_for=who[0])
            plan.append((at, "warmup", "login_failed", 200, raw, who))
        else:
            raw = http_request("GET", "/me/" if i % 2 else "/plain/", port, cookies=logged_in, forwarded_for="192.0.2.1")
            plan.append((at, "warmup", "auth_get" if i % 2 else "anon_get", 200, raw, None))
    burst = int(opts.burst_seconds * opts.burst_rate)
    for i in range(burst):
        at = opts.normal_seconds + i / opts.burst_rate
        who = (burst_ips[i % len(burst_ips)], usernames[i % len(usernames)])
        form = {"username": who[1], "password": f"guess-{i}", "csrfmiddlewaretoken": token}
        raw = http_request("POST", "/login/", port, cookies=anonymous, form=form, forwarded_for=who[0])
        plan.append((at, "burst", "login_failed", 200, raw, who))
    plan.sort(key=lambda item: item[0])
    return plan


async def drive(port: int, plan: list[tuple], timeout: float) -> list[dict[str, Any]]:
    """Send every planned request at its time (open loop); one record per request."""
    results: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2 - min((item[0] for item in plan), default=0.0)  # offset 0: the measured part

    async def one(at: float, phase: str, kind: str, expected: int, raw: bytes, who: tuple | None) -> None:
        scheduled = start + at
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        sent = loop.time()
        try:
            status, _, _ = await exchange(port, raw, timeout)
            error = None if status == expected else f"HTTP {status}"
        except (OSError, asyncio.TimeoutError, IndexError, ValueError) as exc:
            status, error = 0, type(exc).__name__
        done = loop.time()
        results.append({"phase": phase, "kind": kind, "status": status, "error": error,
                        "latency_ms": (done - scheduled) * 1000, "late_ms": (sent - scheduled) * 1000,
                        "at": at, "done": done - start, "who": who})

    await asyncio.gather(*(one(*item) for item in plan))
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


def summarise(results: list[dict[str, Any]], opts: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups = {
        "normal": [r for r in results if r["phase"] == "normal"],
        "burst: normal traffic": [r for r in results if r["phase"] == "burst" and r["kind"] != "login_failed"],
        "burst: failed logins": [r for r in results if r["phase"] == "burst" and r["kind"] == "login_failed"],
        "burst: all": [r for r in results if r["phase"] == "burst"],
    }
    for name, rows in groups.items():
        ok = [r for r in rows if r["error"] is None]
        lat = [r["latency_ms"] for r in ok]
        if name == "normal":
            first, last = 0.0, opts.normal_seconds
        else:
            first, last = opts.normal_seconds, opts.normal_seconds + opts.burst_seconds
        # Throughput: answers received over the phase, its end taken as the later of its schedule and its last answer.
        end = max([last, *(r["done"] for r in rows)]) if rows else last
        out[name] = {"requests": len(rows), "ok": len(ok), "errors": len(rows) - len(ok),
                     "offered_per_s": len(rows) / (last - first), "throughput_per_s": len(ok) / (end - first),
                     "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat, default=float("nan"))}
    return out


# -- Django side: prepare and verify (run in a child process) -------------------------


def django_prepare() -> dict[str, Any]:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    Group.objects.create(pk=1, name="bench")
    return {"ok": True}


def django_verify() -> dict[str, Any]:
    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings

    variant = settings.VARIANT
    rows = {label: apps.get_model(label).objects.count() for label in AUDIT_TABLES[variant]}
    found: dict[str, Any] = {"rows": rows}
    if variant in RAIL_VARIANTS:
        from django.db.models import Count

        from rail_django.models import AuditEventModel

        by_type = dict(AuditEventModel.objects.values_list("event_type").annotate(n=Count("id")))
        alerts: dict[str, int] = {}
        for data in AuditEventModel.objects.filter(event_type="security.alert").values_list("additional_data", flat=True):
            context = data.get("context") or {}
            name = f"{context.get('rule')}:{context.get('key')}"
            alerts[name] = alerts.get(name, 0) + 1
        failed_ips = AuditEventModel.objects.filter(event_type="auth.login.failure").values("client_ip").distinct().count()
        found.update(by_type=by_type, alerts=alerts, failed_login_ips=failed_ips)
    if variant == "axes":
        found["attempt_ips"] = apps.get_model("axes.AccessAttempt").objects.values("ip_address").distinct().count()
    if variant == "easy-audit":
        found["login_ips"] = apps.get_model("easyaudit.LoginEvent").objects.values("remote_ip").distinct().count()
    return found


def expected_checks(variant: str, found: dict[str, Any], results: list[dict[str, Any]],
                    opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Each check: what should hold, what was found, whether it held."""
    failed = sum(1 for r in results if r["kind"] == "login_failed" and r["error"] is None)
    succeeded = 1 + sum(1 for r in results if r["kind"] == "login_ok" and r["error"] is None)  # + the session's login
    checks = []
    if variant in RAIL_VARIANTS:
        by_type = found["by_type"]
        checks.append({"check": "auth.login.failure events stored = failed logins answered",
                       "expected": failed, "found": by_type.get("auth.login.failure", 0)})
        checks.append({"check": "auth.login.success events stored = successful logins answered",
                       "expected": succeeded, "found": by_type.get("auth.login.success", 0)})
        per_ip: dict[str, int] = {}
        per_user: dict[str, int] = {}
        for r in results:
            if r["kind"] == "login_failed" and r["error"] is None:
                per_ip[r["who"][0]] = per_ip.get(r["who"][0], 0) + 1
                per_user[r["who"][1]] = per_user.get(r["who"][1], 0) + 1
        checks.append({"check": "distinct client IPs of the failed logins (from X-Forwarded-For)",
                       "expected": len(per_ip), "found": found["failed_login_ips"]})
        alerts = found["alerts"]
        want = sum(1 for n in per_ip.values() if n >= 10) + sum(1 for n in per_user.values() if n >= 5)
        checks.append({"check": "security.alert keys (one per IP with >= 10 failures and per username with >= 5)",
                       "expected": want, "found": len(alerts)})
        checks.append({"check": "keys alerted more than once in the window", "expected": 0,
                       "found": sum(1 for n in alerts.values() if n > 1)})
    for check in checks:
        check["ok"] = check["expected"] == check["found"]
    return checks


# -- the run -------------------------------------------------------------------------


def run(opts: argparse.Namespace) -> dict[str, Any]:
    variants = chosen_variants(opts.variants)
    db = opts.db or ("postgresql" if answers(5432) else "sqlite")
    redis_host = opts.redis.split("//", 1)[1].split("/", 1)[0]
    host, _, port = redis_host.partition(":")
    if not answers(int(port or 6379)) or host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"the load scenario needs Redis on loopback ({opts.redis}) for the shared failed-login counters")
    run_id = uuid.uuid4().hex[:8]
    work_root = Path(os.environ.get("BENCH_WORK_DIR") or Path(tempfile.gettempdir()) / "rail-django-bench")
    work_root.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"meta": {"db": db, "workers": opts.workers, "variants": variants, "rounds": opts.rounds,
                                       "normal_rate": opts.normal_rate, "normal_seconds": opts.normal_seconds,
                                       "warmup_seconds": opts.warmup_seconds,
                                       "burst_rate": opts.burst_rate, "burst_seconds": opts.burst_seconds,
                                       "burst_ips": opts.burst_ips, "burst_usernames": opts.burst_usernames,
                                       "load_start": [round(x, 2) for x in os.getloadavg()]},
                              "rounds": []}
    with tempfile.TemporaryDirectory(dir=work_root) as scratch:
        for number in range(opts.rounds):
            shift = number % len(variants)
            order = variants[shift:] + variants[:shift]
            round_result = {}
            for variant in order:
                work = Path(scratch) / f"{variant}-{number}"
                work.mkdir()
                db_name = f"rail_django_load_{run_id}_{variant.replace('-', '_')}" if db == "postgresql" \
                    else str(work / "db.sqlite3")
                env = variant_env(variant, db, db_name, work, f"load-{run_id}-{variant}-{number}", opts.redis)
                create_database(db, db_name)
                try:
                    started = time.perf_counter()
                    run_django("prepare", env)
                    drain = Drain(env, work) if variant == "rail-drain" else None
                    try:
                        server = Server(env, opts.workers, work / "gunicorn.log")
                        try:
                            anonymous, token, logged_in = asyncio.run(session(server.port))
                            plan = schedule(opts, server.port, anonymous, token, logged_in, seed=number)
                            load_start = os.getloadavg()[0]
                            results = asyncio.run(drive(server.port, plan, opts.timeout))
                        finally:
                            server.stop()
                    finally:
                        if drain is not None:
                            drain.stop()
                    found = run_django("verify", env)
                    checks = expected_checks(variant, found, results, opts)
                    slowest = sorted(results, key=lambda r: -r["latency_ms"])[:10]
                    entry = {"phases": summarise(results, opts), "found": found, "checks": checks,
                             "slowest": [{k: r[k] for k in ("kind", "at", "latency_ms", "late_ms", "status")}
                                         for r in slowest],
                             "load": load_start, "seconds": time.perf_counter() - started,
                             "errors": sorted({r["error"] for r in results if r["error"]})}
                finally:
                    drop_database(db, db_name)
                    shutil.rmtree(work, ignore_errors=True)
                round_result[variant] = entry
                burst = entry["phases"]["burst: all"]
                print(f"  load {variant}: burst p50 {burst['p50_ms']:.1f} ms, p99 {burst['p99_ms']:.1f} ms, "
                      f"{burst['throughput_per_s']:.0f}/s, checks {'ok' if all(c['ok'] for c in checks) else 'FAILED'} "
                      f"({entry['seconds']:.0f}s, load {load_start:.1f})", file=sys.stderr)
            report["rounds"].append(round_result)
    report["meta"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = combine(report["rounds"], variants)
    return report


def combine(rounds: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Per variant and phase group: the median over rounds of each figure, and p99's ratio to bare's."""
    summary: dict[str, Any] = {}
    for variant in variants:
        groups = {}
        for name in rounds[0][variant]["phases"]:
            figures = [r[variant]["phases"][name] for r in rounds]
            merged = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
            bare = [r["bare"]["phases"][name] for r in rounds] if "bare" in rounds[0] else None
            if bare and variant != "bare":
                merged["p99_ratio"] = statistics.median(f["p99_ms"] / b["p99_ms"] for f, b in zip(figures, bare, strict=True))
                merged["p50_ratio"] = statistics.median(f["p50_ms"] / b["p50_ms"] for f, b in zip(figures, bare, strict=True))
            groups[name] = merged
        checks = [c for r in rounds for c in r[variant]["checks"]]
        summary[variant] = {"phases": groups, "checks_ok": all(c["ok"] for c in checks), "checks": checks,
                            "found": rounds[0][variant]["found"],
                            "rows": [r[variant]["found"]["rows"] for r in rounds]}
    return summary


def markdown(report: dict[str, Any]) -> list[str]:
    meta, summary = report["meta"], report["summary"]
    lines = [
        "## Load scenario (gunicorn, brute-force burst)", "",
        f"gunicorn --preload, {meta['workers']} sync workers, {meta['db']}, shared Redis cache; open-loop client "
        f"on loopback. After {meta['warmup_seconds']:.0f} s of unmeasured warm-up (failed logins included), normal traffic {meta['normal_rate']:.0f} req/s (45% anonymous GET, 45% authenticated GET, "
        f"10% successful login) for {meta['normal_seconds']:.0f} s, then the same plus {meta['burst_rate']:.0f} "
        f"failed logins/s for {meta['burst_seconds']:.0f} s from {meta['burst_ips']} IPs (X-Forwarded-For, trusted "
        f"proxy) against {meta['burst_usernames']} usernames. {meta['rounds']} round(s), load average "
        f"{meta['load_start']} -> {meta['load_end']}. Latency from each request's scheduled time to its last byte; "
        "cells: throughput (answers/s), p50 / p99 in ms, p99 ratio to bare.", "",
        "| variant | normal phase | burst: normal traffic | burst: failed logins | burst: all | errors | checks |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, data in summary.items():
        cells = []
        for name in ("normal", "burst: normal traffic", "burst: failed logins", "burst: all"):
            p = data["phases"][name]
            cell = f"{p['throughput_per_s']:.0f}/s, {p['p50_ms']:.1f} / {p['p99_ms']:.1f}"
            if "p99_ratio" in p:
                cell += f" (**{p['p99_ratio']:.2f}x**)"
            cells.append(cell)
        errors = sum(data["phases"][n]["errors"] for n in ("normal", "burst: all"))
        checks = "n/a" if not data["checks"] else ("all met" if data["checks_ok"] else "**FAILED**")
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {errors:.0f} | {checks} |")
    lines.append("")
    for variant in RAIL_VARIANTS:
        p = summary.get(variant, {}).get("phases", {}).get("burst: all", {})
        if "p99_ratio" in p:
            met = "met" if p["p99_ratio"] <= P99_TARGET else "**not met**"
            lines.append(f"- target: {variant} p99 during the burst <= {P99_TARGET:.2f}x bare: "
                         f"{p['p99_ratio']:.2f}x, {met}")
    rounds = report["rounds"]
    if len(rounds) > 1:
        lines.append("- each round (burst, all requests: p50 / p99 ms, load average): " + "; ".join(
            f"{v} " + ", ".join(f"{r[v]['phases']['burst: all']['p50_ms']:.1f} / {r[v]['phases']['burst: all']['p99_ms']:.1f}"
                               f" ({r[v]['load']:.1f})" for r in rounds) for v in summary))
    for variant, data in summary.items():
        grouped: dict[str, list[dict[str, Any]]] = {}
        for check in data["checks"]:
            grouped.setdefault(check["check"], []).append(check)
        for name, each in grouped.items():
            lines.append(f"- {variant}: {name}: expected {' / '.join(str(c['expected']) for c in each)}, "
                         f"found {' / '.join(str(c['found']) for c in each)}"
                         f"{'' if all(c['ok'] for c in each) else ' **(FAILED)**'}")
        extra = {k: v for k, v in data["found"].items() if k.endswith("_ips")}
        lines.append(f"- {variant}: rows stored per table: {data['rows'][0]}" + (f"; distinct IPs: {extra}" if extra else ""))
    return lines + [""]


def section(smoke: bool) -> dict[str, Any]:
    """``make bench``'s load section (``benchmarks/run.py``): this scenario, flags from ``BENCH_LOAD_ARGS``."""
    argv = shlex.split(os.environ.get("BENCH_LOAD_ARGS", "")) + (["--smoke"] if smoke else [])
    opts = parse_args(argv)
    if not answers(int(opts.redis.rsplit(":", 1)[-1].split("/", 1)[0] or 6379)):
        # Said in the report instead of ending a long `make bench` run at its last section.
        print(f"  load: skipped, Redis does not answer at {opts.redis}", file=sys.stderr)
        return {"skipped": f"Redis does not answer at {opts.redis} (the failed-login counters need it)"}
    return run(opts)


def section_markdown(result: dict[str, Any]) -> list[str]:
    """The section's part of ``make bench``'s report."""
    if "skipped" in result:
        return ["## Load scenario (gunicorn, brute-force burst)", "", f"Not run: {result['skipped']}.", ""]
    return markdown(result)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    if argv is None and len(sys.argv) == 2 and sys.argv[1] in ("prepare", "verify"):
        print(json.dumps(django_prepare() if sys.argv[1] == "prepare" else django_verify()))
        return {}
    opts = parse_args(argv)
    report = run(opts)
    print("\n".join(markdown(report)))
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
