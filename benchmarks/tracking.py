"""Model change tracking benchmark: rail-django's tracking against the same project untracked, and against
django-auditlog, django-simple-history and django-pghistory, side by side in one run.

    python benchmarks/tracking.py                          # PostgreSQL (5 variants) and SQLite (4: no pghistory)
    python benchmarks/tracking.py --smoke                  # tiny counts, SQLite only: checks the harness works
    python benchmarks/tracking.py --databases postgresql --rounds 5 --markdown out.md

Scenarios (benchmarks/tracking_project):

* ``save_request``: a logged-in POST whose view loads an invoice, changes three
  fields and calls ``save()``, through Django's WSGI handler; a batch of
  requests ends with ``security.flush()`` (the audit rows are written: flush
  included).
* ``bulk_update_10k``: ``Invoice.objects.filter(kind="bulk").update(status=...)``
  over 10,000 rows, one call per operation, then ``security.flush()``.

Every variant runs in its own process in every round, on its own database,
with rail-django and its middleware installed (``untracked`` tracks nothing, so
a ratio is the cost of the tracking alone). Within a round the parent
interleaves the variants batch by batch, rotating which goes first; a
variant's ratio in a round is the median over batches of (its batch / the
``untracked`` batch of the same index). The report gives the median ratio
over rounds with its min-max, the median time per operation, and the audit
rows each operation left (0 means the package did not see the write).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = ["untracked", "rail", "rail-drain", "auditlog", "simple-history", "pghistory"]
#: Variants of rail-django itself (the others are the reference packages, measured when importable).
RAIL_VARIANTS = ("untracked", "rail", "rail-drain")
MODULES = {"auditlog": "auditlog", "simple-history": "simple_history", "pghistory": "pghistory"}
#: The audit rows each variant writes for a change of the invoice model.
AUDIT_MODELS = {
    "untracked": "rail_django.AuditEventModel",
    "rail": "rail_django.AuditEventModel",
    "rail-drain": "rail_django.AuditEventModel",
    "auditlog": "auditlog.LogEntry",
    "simple-history": "shop.HistoricalInvoice",
    "pghistory": "shop.InvoiceEvent",
}
BULK_ROWS = 10_000
#: update() calls per bulk batch: the audit writer closes its connection after 1 s idle, and with one
#: call per batch every call would pay its reconnection (the variants' batches are seconds apart).
BULK_OPS = 3
TARGETS = {(scenario, variant): limit for variant in ("rail", "rail-drain")
           for scenario, limit in (("save_request", 1.15), ("bulk_update_10k", 1.10))}


# -- the worker: one variant's process ------------------------------------------------------------


def setup_django(variant: str, backend: str, name: str) -> None:
    os.environ.update(TRACK_VARIANT=variant, TRACK_DB=backend, TRACK_DB_NAME=name,
                      DJANGO_SETTINGS_MODULE="benchmarks.tracking_project.settings")
    if variant == "rail-drain":  # the worker and its drain process share one journal directory
        work = Path(os.environ.get("TRACK_WORK_DIR", "/tmp/rail-django-track-bench"))
        os.environ.setdefault("TRACK_JOURNAL_DIR", str(work / f"journal-drain-{os.getpid()}"))
    import django

    django.setup()


def prepare(variant: str, backend: str, name: str, bulk_rows: int) -> None:
    """Create the tables, the user, two customers, the request's invoice and the bulk invoices."""
    setup_django(variant, backend, name)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from benchmarks.tracking_project.shop.models import Customer, Invoice
    from rail_django.security import security

    # The apps with migrations first: the shop app's tables (made by syncdb) point at auth_user.
    call_command("migrate", verbosity=0, interactive=False)
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    if variant == "pghistory":
        call_command("pgtrigger", "install", verbosity=0)  # the shop app has no migrations to carry them
    get_user_model().objects.create_user("bench", password="bench-password-1")
    Customer.objects.bulk_create([Customer(name="A"), Customer(name="B")])
    Invoice.objects.create(number="REQ-1", kind="request", amount=1)
    Invoice.objects.bulk_create(
        [Invoice(number=f"B-{n:06d}", kind="bulk", amount=n % 100) for n in range(bulk_rows)], batch_size=2000)
    security.flush()


class Worker:
    """Answers the parent's commands, one JSON line each: batch, rows, quit."""

    def __init__(self, variant: str, backend: str, name: str, per_batch: int) -> None:
        setup_django(variant, backend, name)
        from django.apps import apps
        from django.contrib.auth import get_user_model
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import Client

        from benchmarks.requests_worker import launch_drain
        from benchmarks.tracking_project.shop.models import Customer, Invoice
        from rail_django.security import security

        self.variant, self.per_batch = variant, per_batch
        self.flush = security.flush
        # rail-drain: `audit_management drain` on this worker's database and journal, in its own process.
        self.drain = launch_drain({**os.environ, "PYTHONPATH": str(ROOT)}) if variant == "rail-drain" else None
        self.handler = WSGIHandler()
        self.audit = apps.get_model(AUDIT_MODELS[variant])
        self.invoices = Invoice.objects.filter(kind="bulk")
        self.bulk_rows = self.invoices.count()
        client = Client()
        client.force_login(get_user_model().objects.get(username="bench"))
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        pk = Invoice.objects.get(number="REQ-1").pk
        customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
        # Two alternating forms: every request changes the three fields.
        self.requests = [self._environ(f"/invoices/{pk}/update/", cookie, {
            "amount": f"{100 + n}.00", "status": ("sent", "paid")[n], "customer": customers[n]}) for n in (0, 1)]
        self.count = 0
        self.flush()

    @staticmethod
    def _environ(path: str, cookie: str, form: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        body = urlencode(form).encode()
        env = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "bench.example", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "bench.example", "HTTP_COOKIE": cookie,
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0", "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        return env, body

    def _request(self) -> None:
        env, body = self.requests[self.count % 2]
        self.count += 1
        env = dict(env, **{"wsgi.input": io.BytesIO(body)})
        status: list[str] = []
        result = self.handler(env, lambda s, h, e=None: status.append(s))
        b"".join(result)
        result.close()
        if not status[0].startswith("200"):
            raise SystemExit(f"{self.variant}: the request answered {status[0]}")

    def _bulk(self) -> None:
        self.count += 1
        updated = self.invoices.update(status=("sent", "paid")[self.count % 2])
        if updated != self.bulk_rows:
            raise SystemExit(f"{self.variant}: update() changed {updated} rows, not {self.bulk_rows}")

    def batch(self, scenario: str) -> dict[str, float]:
        ops = self.per_batch if scenario == "save_request" else BULK_OPS
        step = self._request if scenario == "save_request" else self._bulk
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(ops):
            step()
        self.flush()
        return {"seconds": (time.perf_counter() - wall) / ops, "cpu": (time.process_time() - cpu) / ops, "ops": ops}

    def serve(self) -> None:
        print(json.dumps({"ready": self.variant}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                from benchmarks.requests_worker import stop_drain

                stop_drain(self.drain)
                break
            if command["op"] == "rows":
                answer: dict[str, Any] = {"rows": self.audit.objects.count()}
            else:
                answer = self.batch(command["scenario"])
            print(json.dumps(answer), flush=True)


# -- the parent -------------------------------------------------------------------------------------


class Process:
    def __init__(self, variant: str, backend: str, name: str, per_batch: int, log: Path) -> None:
        self.variant, self.log_path = variant, log
        self.log = open(log, "w")  # noqa: SIM115 (closed in quit)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve", "--variant", variant, "--backend", backend, "--name", name,
             "--per-batch", str(per_batch)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        self.read()

    def read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise SystemExit(f"{self.variant} failed:\n{self.log_path.read_text()[-3000:]}")
        return json.loads(line)

    def ask(self, **command: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def quit(self) -> None:
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=120)
        self.log.close()


def postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def fresh_database(backend: str, variant: str, work: Path) -> str:
    if backend == "sqlite":
        path = work / f"track-{variant}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return str(path)
    import psycopg

    name = f"rail_track_bench_{variant.replace('-', '_')}"
    with psycopg.connect(host="127.0.0.1", user=os.environ.get("PGUSER", "postgres"), dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def run_backend(opts: argparse.Namespace, backend: str, work: Path) -> dict[str, Any]:
    variants = [v for v in opts.variants if v in RAIL_VARIANTS or importlib.util.find_spec(MODULES[v])]
    if backend != "postgresql":
        variants = [v for v in variants if v != "pghistory"]  # triggers and functions of PostgreSQL
    names = {}
    for variant in variants:
        names[variant] = fresh_database(backend, variant, work)
        completed = subprocess.run(
            [sys.executable, __file__, "prepare", "--variant", variant, "--backend", backend,
             "--name", names[variant], "--bulk-rows", str(opts.bulk_rows)],
            cwd=ROOT, capture_output=True, text=True)
        if completed.returncode:
            raise SystemExit(f"prepare {variant} failed:\n{completed.stdout}\n{completed.stderr}")
    results: dict[str, dict[str, Any]] = {s: {v: {"ratios": [], "seconds": []} for v in variants} for s in opts.scenarios}
    for number in range(opts.rounds):
        workers = {v: Process(v, backend, names[v], opts.per_batch, work / f"{backend}-{v}.log") for v in variants}
        try:
            for scenario in opts.scenarios:
                for worker in workers.values():
                    worker.ask(op="batch", scenario=scenario)  # warm-up, not measured
                before = {v: w.ask(op="rows")["rows"] for v, w in workers.items()}
                times: dict[str, list[float]] = {v: [] for v in variants}
                cpu: dict[str, list[float]] = {v: [] for v in variants}
                ops = 0
                for index in range(opts.batches):
                    shift = (number * opts.batches + index) % len(variants)
                    for variant in variants[shift:] + variants[:shift]:
                        answer = workers[variant].ask(op="batch", scenario=scenario)
                        times[variant].append(answer["seconds"])
                        cpu[variant].append(answer["cpu"])
                    ops += answer["ops"]
                after = {v: w.ask(op="rows")["rows"] for v, w in workers.items()}
                for variant in variants:
                    entry = results[scenario][variant]
                    entry["ratios"].append(statistics.median(
                        t / b for t, b in zip(times[variant], times["untracked"], strict=True)))
                    entry.setdefault("cpu_ratios", []).append(statistics.median(
                        t / b for t, b in zip(cpu[variant], cpu["untracked"], strict=True)))
                    entry["seconds"].extend(times[variant])
                    entry["rows_per_op"] = (after[variant] - before[variant]) / ops
        finally:
            for worker in workers.values():
                worker.quit()
    return {"variants": variants, "results": results}


def markdown(report: dict[str, Any]) -> str:
    titles = {"save_request": "update of 3 fields through save() in a request",
              "bulk_update_10k": f"QuerySet.update() of {report['bulk_rows']:,} rows"}
    lines = [f"Rounds: {report['rounds']}, batches per round: {report['batches']}, "
             f"requests per batch: {report['per_batch']}; load before: {report['load']}.", ""]
    for backend, data in report["backends"].items():
        lines += [f"**{backend}**", "",
                  "| scenario | variant | ratio to untracked (min-max) | CPU ratio | time per op | audit rows per op |",
                  "|---|---|---|---|---|---|"]
        for scenario, by_variant in data["results"].items():
            for variant in data["variants"]:
                entry = by_variant[variant]
                ratios = entry["ratios"]
                target = TARGETS.get((scenario, variant))
                mark = "" if target is None else (f" (target <= {target}: {'met' if statistics.median(ratios) <= target else 'missed'})")
                lines.append(
                    f"| {titles[scenario]} | {variant} | {statistics.median(ratios):.2f}x "
                    f"({min(ratios):.2f}-{max(ratios):.2f}){mark} | {statistics.median(entry['cpu_ratios']):.2f}x "
                    f"| {statistics.median(entry['seconds']) * 1000:.2f} ms "
                    f"| {entry['rows_per_op']:g} |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "prepare", "serve"])
    parser.add_argument("--smoke", action="store_true", help="tiny counts on SQLite only")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--per-batch", type=int, default=None, help="requests per save_request batch")
    parser.add_argument("--bulk-rows", type=int, default=BULK_ROWS)
    parser.add_argument("--databases", default=None, help="sqlite,postgresql (default: both when PostgreSQL answers)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--scenarios", default="save_request,bulk_update_10k")
    parser.add_argument("--work-dir", default=os.environ.get("TRACK_WORK_DIR", "/tmp/rail-django-track-bench"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    # The worker's own arguments.
    parser.add_argument("--variant")
    parser.add_argument("--backend")
    parser.add_argument("--name")
    args = parser.parse_args(argv)
    defaults = {"rounds": (1, 5), "batches": (2, 10), "per_batch": (5, 100)}
    for key, (smoke, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, smoke if args.smoke else full)
    if args.databases is None:
        args.databases = "sqlite" if args.smoke else ("postgresql,sqlite" if postgres_answers() else "sqlite")
    args.variants = [v for v in args.variants.split(",") if v]
    if "untracked" not in args.variants:
        args.variants.insert(0, "untracked")
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    return args


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    if opts.command == "prepare":
        # (rail-drain's tables are rail's; its worker starts the drain, so prepare writes through the writer)
        prepare("rail" if opts.variant == "rail-drain" else opts.variant, opts.backend, opts.name, opts.bulk_rows)
        return
    if opts.command == "serve":
        Worker(opts.variant, opts.backend, opts.name, opts.per_batch).serve()
        return
    work = Path(opts.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"rounds": opts.rounds, "batches": opts.batches, "per_batch": opts.per_batch,
                              "bulk_rows": opts.bulk_rows, "load": [round(x, 2) for x in os.getloadavg()],
                              "backends": {}}
    for backend in [b for b in opts.databases.split(",") if b]:
        report["backends"][backend] = run_backend(opts, backend, work)
    text = markdown(report)
    print(text)
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2))
    if opts.markdown:
        Path(opts.markdown).write_text(text + "\n")


def section(smoke: bool) -> dict[str, Any]:
    """``make bench``'s tracking section (``benchmarks/run.py``), in a process of its own (it starts Django);
    flags from ``BENCH_TRACKING_ARGS``."""
    import shlex
    import tempfile

    argv = shlex.split(os.environ.get("BENCH_TRACKING_ARGS", "")) + (["--smoke"] if smoke else [])
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "tracking.json"
        subprocess.run([sys.executable, __file__, "run", *argv, "--json", str(out)], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        return json.loads(out.read_text())


def section_markdown(result: dict[str, Any]) -> list[str]:
    """The section's part of ``make bench``'s report."""
    return ["## Model change tracking (`benchmarks/tracking.py`)", "", markdown(result), ""]


if __name__ == "__main__":
    main()
