"""The streaming tier (AUDIT_STREAM, issue 15): end-to-end throughput and the stream sink's request-path cost.

    python benchmarks/stream.py                          # both parts (needs nats-server and PostgreSQL)
    python benchmarks/stream.py --events 200000 --apps 2 --ingests 2 --skip-requests
    python benchmarks/run.py --skip-requests --skip-throughput --sections stream   # the same, from the suite

End to end: a 3-node NATS cluster with JetStream is started on free loopback ports (its own store
directories), the stream is R3. ``--apps`` application processes each emit ``--events / --apps`` events
through ``security.emit`` (the background writer and the stream sink, as in a web process) while
``--ingests`` ``audit_management ingest`` processes store the stream into a fresh PostgreSQL database
(``rail_stream_bench``, dropped after). The figure is events stored / seconds from the first emit to the
last row committed. Two more figures split it: the publish rate of the application processes (acked by
JetStream), and the drain rate of ingest alone over a stream filled beforehand; and the same application
processes with the database sink instead of the stream give the same run's reference.

Request path: the benchmark project's ``emit`` and ``login_failed`` scenarios (benchmarks/requests_worker.py)
for ``bare`` Django, ``rail`` (database sink) and ``rail-stream`` (the stream sink to the same cluster),
interleaved batch by batch as ``run.py`` does; each variant's ratio to bare is the median over rounds of
the median paired batch ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASE = "rail_stream_bench"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
REQUEST_SCENARIOS = ("emit", "login_failed")


# -- the cluster ------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """Three routed JetStream nodes on loopback."""

    def __init__(self, base: Path) -> None:
        ports = free_ports(6)
        self.client_ports, route_ports = ports[:3], ports[3:]
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
        self.processes = []
        for i in range(3):
            conf = base / f"n{i}.conf"
            conf.write_text(
                f'server_name: "b{i}"\nlisten: "127.0.0.1:{self.client_ports[i]}"\n'
                f'jetstream {{ store_dir: "{base / f"n{i}"}", max_memory_store: 64MB, max_file_store: 8GB }}\n'
                f'cluster {{ name: "rail-bench", listen: "127.0.0.1:{route_ports[i]}", routes: [{routes}] }}\n'
            )
            log = open(base / f"n{i}.log", "ab")  # noqa: SIM115 -- handed to the server
            self.processes.append(subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT))
            log.close()
        self.wait_ready()

    @property
    def servers(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    def wait_ready(self, timeout: float = 30) -> None:
        import asyncio

        import nats

        async def quiet(exc: Exception) -> None:
            pass

        async def ready() -> None:
            for server in self.servers:
                client = await nats.connect(server, connect_timeout=1, allow_reconnect=False, error_cb=quiet)
                try:
                    await client.jetstream(timeout=2).account_info()
                finally:
                    await client.close()

        deadline = time.monotonic() + timeout
        while True:
            try:
                asyncio.run(ready())
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)


def stream_setting(cluster: Cluster, name: str) -> dict[str, Any]:
    return {"backend": "nats", "servers": cluster.servers, "stream": name, "subject": f"audit.{name.lower()}",
            "replicas": 3, "durable": f"ingest-{name.lower()}", "batch": 2000}


# -- CPU accounting ---------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: The machine's budget: every core for the target rate (2 cores / 20,000 events/s = 100 CPU-us per event).
TARGET_PER_S = 20_000


def cpu_seconds(pid: int, path: str = "") -> float | None:
    """utime + stime of a live process (all its threads), from /proc/<pid>/stat; None once it is gone."""
    try:
        fields = Path(path or f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (every process, every core) from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # minus idle and iowait


def pg_pids() -> dict[str, list[int]]:
    """PostgreSQL's processes for this run: the benchmark database's backends, and the server's own
    processes (WAL writer, checkpointer...; shared with anything else using the server)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
        pids: dict[str, list[int]] = {"postgresql backends": [], "postgresql server processes": []}
        for pid, datname, backend_type in rows.fetchall():
            if datname == DATABASE and backend_type == "client backend":
                pids["postgresql backends"].append(pid)
            elif backend_type != "client backend":
                pids["postgresql server processes"].append(pid)
        return pids


class CpuMeter:
    """CPU seconds used by groups of processes between ``start()`` and ``stop()``.

    Processes are sampled at both ends (a process that appears in between counts from 0; one that exits
    in between is lost, so the caller samples before stopping anything). The application processes report
    their own CPU (they exit before the end), added with ``add``."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, int], float] = {}
        self.used: dict[str, float] = {}
        self.machine = 0.0

    def sample(self, groups: dict[str, list[int]]) -> dict[tuple[str, int], float]:
        return {(group, pid): cpu for group, pids in groups.items() for pid in pids
                if (cpu := cpu_seconds(pid)) is not None}

    def start(self, groups: dict[str, list[int]]) -> None:
        self.first = self.sample(groups)
        self.machine = machine_cpu_seconds()

    def stop(self, groups: dict[str, list[int]]) -> None:
        self.machine = machine_cpu_seconds() - self.machine
        for (group, pid), cpu in self.sample(groups).items():
            self.used[group] = self.used.get(group, 0.0) + cpu - self.first.get((group, pid), 0.0)

    def add(self, group: str, seconds: float) -> None:
        self.used[group] = self.used.get(group, 0.0) + seconds

    def per_event(self, events: int, seconds: float) -> dict[str, Any]:
        tiers = {group: round(used * 1e6 / events, 1) for group, used in self.used.items()}
        return {"tiers_us_per_event": tiers, "total_us_per_event": round(sum(self.used.values()) * 1e6 / events, 1),
                "machine_us_per_event": round(self.machine * 1e6 / events, 1),
                "budget_us_per_event": round((os.cpu_count() or 1) * 1e6 / TARGET_PER_S, 1),
                "wall_seconds": round(seconds, 2)}


# -- end to end -----------------------------------------------------------------------------------


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def pg_count() -> int:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DATABASE, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM rail_django_auditeventmodel").fetchone()[0]


def pg_truncate() -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DATABASE, autocommit=True) as conn:
        conn.execute("TRUNCATE rail_django_auditeventmodel")


def project_env(work: Path, stream: dict[str, Any] | None, db: str = "postgresql", name: str = DATABASE) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "benchmarks.project.settings",
           "BENCH_VARIANT": "rail", "BENCH_DB": db, "BENCH_DB_NAME": name, "BENCH_WORK_DIR": str(work)}
    if stream is not None:
        env["BENCH_AUDIT_STREAM"] = json.dumps(stream)
    return env


def start_ingests(count: int, env: dict[str, str]) -> list[subprocess.Popen]:
    workers = [
        subprocess.Popen([sys.executable, "-m", "django", "audit_management", "ingest", "--report-every", "5"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    for worker in workers:
        line = worker.stdout.readline()
        if not line.startswith("ingest: consuming"):
            raise SystemExit(f"ingest did not start: {line}{worker.stderr.read()[-2000:]}")
    return workers


def stop_ingests(workers: list[subprocess.Popen]) -> list[str]:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    return [worker.communicate(timeout=60)[0] for worker in workers]


def start_apps(count: int, per_app: int, env: dict[str, str]) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, str(Path(__file__)), "_emit", str(per_app)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]


def app_results(apps: list[subprocess.Popen]) -> list[dict[str, Any]]:
    results = []
    for app in apps:
        out, err = app.communicate(timeout=900)
        if app.returncode != 0:
            raise SystemExit(f"an application process failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def wait_rows(total: int, timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg_count() >= total:
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"only {pg_count()} of {total} events reached PostgreSQL in {timeout} s")


def run_end_to_end(cluster: Cluster, work: Path, events: int, apps: int, ingests: int) -> dict[str, Any]:
    pg_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{DATABASE}"')
    try:
        subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                       env=project_env(work, None))
        per_app = events // apps
        total = per_app * apps
        # 1. Everything at once: apps publish while ingest stores.
        env = project_env(work, stream_setting(cluster, "E2E"))
        workers = start_ingests(ingests, env)
        groups = {"nats-server (3 nodes)": [p.pid for p in cluster.processes],
                  "ingest processes": [w.pid for w in workers]}
        meter = CpuMeter()
        meter.start(groups)  # (the database's backends appear with the first rows: they count from 0)
        started = time.perf_counter()
        running = start_apps(apps, per_app, env)
        published = app_results(running)
        stored_at = wait_rows(total)
        meter.stop({**groups, **pg_pids()})
        for result in published:
            meter.add("application processes", result["cpu_seconds"])
        threads: dict[str, float] = {}
        for result in published:
            for name, seconds in result["threads"].items():
                threads[name] = threads.get(name, 0.0) + seconds
        stop_ingests(workers)
        end_to_end = total / (stored_at - started)
        publish_rate = total / max(r["seconds"] for r in published)
        cpu = meter.per_event(total, stored_at - started)
        # (per thread since the process started: MainThread includes Django's start-up)
        cpu["application_threads_us_per_event"] = {name: round(seconds * 1e6 / total, 1) for name, seconds in threads.items()}
        # 2. Ingest alone, draining a stream filled beforehand.
        pg_truncate()
        env = project_env(work, stream_setting(cluster, "DRAIN"))
        app_results(start_apps(apps, per_app, env))
        workers = start_ingests(ingests, env)  # (timed from the start line: connecting is not draining)
        started = time.perf_counter()
        stored_at = wait_rows(total)
        stop_ingests(workers)
        drain_rate = total / (stored_at - started)
        # 3. The same run's reference: the same application processes with the database sink (no stream).
        pg_truncate()
        started = time.perf_counter()
        app_results(start_apps(apps, per_app, project_env(work, None)))
        direct_rate = total / (wait_rows(total) - started)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return {"events": total, "apps": apps, "ingests": ingests, "end_to_end_per_s": round(end_to_end),
            "publish_per_s": round(publish_rate), "ingest_drain_per_s": round(drain_rate),
            "database_sink_per_s": round(direct_rate), "cpu": cpu,
            "emit_seconds": [round(r["emit_seconds"], 2) for r in published]}


def emit_child(count: int) -> None:
    """(``_emit COUNT``) One application process: emit, then wait until JetStream acknowledged everything."""
    import django

    django.setup()
    from rail_django.delivery.dispatcher import dispatcher
    from rail_django.security import EventType, security

    started, cpu_started = time.perf_counter(), time.process_time()
    for n in range(count):
        security.emit(EventType.DATA_READ, action="bench", context={"n": n})
    emitted = time.perf_counter()
    while not (security.flush(timeout=60) and not (dispatcher.journal and dispatcher.journal.spooled())):
        time.sleep(0.2)
    done = time.perf_counter()
    # CPU of every thread of this process (request path, writer, the sink's event loop) from the first emit
    # to the last ack; Django's start-up is left out as a web process pays it once.
    print(json.dumps({"seconds": done - started, "emit_seconds": emitted - started,
                      "cpu_seconds": time.process_time() - cpu_started, "threads": thread_cpu_seconds()}))


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each live thread of this process so far, by thread name (Django's start-up included in
    MainThread's), from /proc/self/task/<tid>/stat."""
    import threading

    return {thread.name: round(cpu, 3) for thread in threading.enumerate()
            if (cpu := cpu_seconds(thread.native_id or 0, f"/proc/self/task/{thread.native_id}/stat")) is not None}


# -- request path ----------------------------------------------------------------------------------


def run_requests(cluster: Cluster, work: Path, rounds: int, batches: int, scale: float) -> dict[str, Any]:
    from benchmarks import run as harness
    from benchmarks.requests_worker import SCENARIOS

    base_env = {**os.environ, "BENCH_WORK_DIR": str(work), "PYTHONPATH": str(ROOT)}
    envs = {"bare": base_env, "rail": base_env,
            "rail-stream": {**base_env, "BENCH_AUDIT_STREAM": json.dumps(stream_setting(cluster, "REQ"))}}
    templates = {}
    for variant in ("bare", "rail"):
        templates[variant] = work / f"template-{variant}.sqlite3"
        harness.run_child([str(HERE / "requests_worker.py"), "prepare", "--variant", variant,
                           "--db", str(templates[variant])], base_env)
    labels = list(envs)
    scenarios = [s for s in SCENARIOS if s.name in REQUEST_SCENARIOS]
    results = []
    for number in range(rounds):
        workers = {label: harness.Worker("bare" if label == "bare" else "rail",
                                         templates["bare" if label == "bare" else "rail"], scale, envs[label],
                                         work / f"worker-{label}.log") for label in labels}
        result: dict[str, Any] = {label: {} for label in labels}
        try:
            for scenario in scenarios:
                for label in labels:
                    workers[label].ask("warm", scenario.name)
                collected: dict[str, list] = {label: [] for label in labels}
                for index in range(batches):
                    shift = (number * batches + index) % len(labels)
                    for label in labels[shift:] + labels[:shift]:
                        collected[label].append(workers[label].ask("batch", scenario.name))
                for label in labels:
                    rows = workers[label].ask("done", scenario.name)["rows_added"]
                    result[label][scenario.name] = {"batches": collected[label], "rows_added": rows,
                                                    "requests": sum(b["requests"] for b in collected[label])}
        finally:
            for worker in workers.values():
                worker.quit()
        results.append(result)
        print(f"  stream request round {number + 1}/{rounds} done", file=sys.stderr)
    return harness.summarise_rounds(results, labels, scenarios)


# -- report ---------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = ["## Issue 15 — streaming tier", "", f"Command: `{report['command']}`", ""]
    e2e = report.get("end_to_end")
    if e2e:
        lines += [
            f"End to end, app -> JetStream (3 nodes, R3) -> ingest -> PostgreSQL: {e2e['events']} events, "
            f"{e2e['apps']} application process(es), {e2e['ingests']} ingest process(es).", "",
            "| figure | events/s |", "|---|---|",
            f"| end to end (first emit to last row committed) | {e2e['end_to_end_per_s']} |",
            f"| published and acknowledged by JetStream (application processes) | {e2e['publish_per_s']} |",
            f"| ingest alone, draining a filled stream | {e2e['ingest_drain_per_s']} |",
            f"| same run, reference: the same app processes with the database sink (no stream) | "
            f"{e2e['database_sink_per_s']} |", "",
        ]
        cpu = e2e.get("cpu")
        if cpu:
            lines += [f"CPU per event during the end-to-end run ({cpu['wall_seconds']} s), from /proc/<pid>/stat "
                      f"(utime+stime) deltas; the application processes report their own process time:", "",
                      "| tier | CPU-µs per event |", "|---|---|"]
            lines += [f"| {tier} | {us} |" for tier, us in cpu["tiers_us_per_event"].items()]
            lines += [f"| **total of the tiers** | **{cpu['total_us_per_event']}** |",
                      f"| the whole machine, every process (/proc/stat) | {cpu['machine_us_per_event']} |",
                      f"| budget at {TARGET_PER_S:,} events/s on {os.cpu_count()} cores | {cpu['budget_us_per_event']} |",
                      ""]
            split = cpu.get("application_threads_us_per_event")
            if split:
                lines += ["Application processes by thread (CPU-µs per event, since process start): "
                          + ", ".join(f"{name} {us}" for name, us in split.items()), ""]
    requests = report.get("requests")
    if requests:
        lines += ["Request path, ratio to bare Django (median over rounds; min-max), time per request:", "",
                  "| scenario | rail (database sink) | rail-stream (stream sink) |", "|---|---|---|"]
        for name, entry in requests.items():
            cells = []
            for label in ("rail", "rail-stream"):
                v = entry["variants"][label]
                cells.append(f"{v['ratio']:.3f} ({v['ratio_min']:.3f}-{v['ratio_max']:.3f}), {v['median_us']:.0f} µs")
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return "\n".join(lines)


def run(events: int = 100_000, apps: int = 2, ingests: int = 2, rounds: int = 3, batches: int = 10,
        scale: float = 1.0, requests: bool = True, end_to_end: bool = True, command: str = "") -> dict[str, Any]:
    """Start the cluster, measure, stop it; the figures as a dict (``markdown()`` renders them)."""
    if not Path(NATS_SERVER).exists():
        raise SystemExit("nats-server is not installed (apt-get install nats-server)")
    base = Path(tempfile.mkdtemp(prefix="rail-stream-bench-"))
    report: dict[str, Any] = {"command": command or "python benchmarks/stream.py", "cpus": os.cpu_count(),
                              "load_start": [round(x, 2) for x in os.getloadavg()]}
    cluster = Cluster(base)
    try:
        if end_to_end:
            report["end_to_end"] = run_end_to_end(cluster, base, events, apps, ingests)
        if requests:
            report["requests"] = run_requests(cluster, base, rounds, batches, scale)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_emit"]:
        emit_child(int(argv[1]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--apps", type=int, default=2)
    parser.add_argument("--ingests", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--skip-requests", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    report = run(opts.events, opts.apps, opts.ingests, opts.rounds, opts.batches, opts.scale,
                 requests=not opts.skip_requests, end_to_end=not opts.skip_end_to_end,
                 command="python benchmarks/stream.py " + " ".join(argv))
    print(markdown(report))
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2))


def section(smoke: bool) -> dict[str, Any]:
    """``make bench``'s stream section (``benchmarks/run.py``): events from ``BENCH_STREAM_EVENTS``."""
    if not Path(NATS_SERVER).exists():
        return {"skipped": "nats-server is not installed (apt-get install nats-server)"}
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return {"skipped": "PostgreSQL does not answer on 127.0.0.1:5432 (ingest writes into it)"}
    events = 2_000 if smoke else int(os.environ.get("BENCH_STREAM_EVENTS", 100_000))
    return run(events=events, rounds=1 if smoke else 3, batches=2 if smoke else 10, scale=0.1 if smoke else 1.0,
               command=f"make bench (BENCH_STREAM_EVENTS={events})")


def section_markdown(result: dict[str, Any]) -> list[str]:
    """The section's part of ``make bench``'s report."""
    if "skipped" in result:
        return ["## Issue 15 — streaming tier", "", f"Not run: {result['skipped']}.", ""]
    return [markdown(result)]


if __name__ == "__main__":
    main()
