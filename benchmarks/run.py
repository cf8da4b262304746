"""rail-django benchmark suite: request overhead against a bare Django project, and throughput at table scale.

    make bench                                   # the full run (see benchmarks/RESULTS.md)
    python benchmarks/run.py --smoke             # tiny counts, SQLite only: checks the harness works
    python benchmarks/run.py --rounds 9 --skip-throughput --json out.json --markdown out.md
    python benchmarks/run.py --rounds 3 --skip-throughput --baseline /tmp/main-checkout   # old code beside new
    python benchmarks/run.py --skip-requests --skip-throughput --sections partitions,stream   # issue 15 only

Request scenarios: every variant (``bare``, ``rail``, ``rail-sync`` and, when
importable, ``easy-audit``, ``axes``, ``auditlog``) runs in its own fresh
process in every round. Within a round the parent interleaves the variants
batch by batch (A B C, B C A, ...), so two batches compared were measured
moments apart and machine drift hits every variant alike. A batch's figure is
wall time per request (and process CPU time, which leaves out time the
process waited for a CPU that other programs held). A variant's ratio in a
round is the median over the batches of (its batch / the bare batch next to
it); the report gives the median of those ratios over rounds, with their
min-max, and each variant's median time per request. Throughput tasks run one
process each (see ``benchmarks/throughput.py``). Counts come from flags, or
from the environment (``BENCH_ROUNDS``, ``BENCH_BATCHES``, ``BENCH_SCALE``,
``BENCH_EMIT_COUNT``, ``BENCH_EXPORT_ROWS``, ``BENCH_SUMMARY_ROWS``,
``BENCH_CLEANUP_ROWS``, ``BENCH_DATABASES``).

Sections after the throughput tasks (:data:`SECTIONS`), each run in a full run: ``load``
(``benchmarks/load.py``: the project under gunicorn, normal traffic and a brute-force burst; needs Redis on
127.0.0.1:6379), ``partitions`` (``benchmarks/partitions.py``: dropping a partition against batched cleanup,
insert rate partitioned against plain; needs PostgreSQL; rows from ``BENCH_PARTITION_ROWS``, 10,000,000),
``stream`` (``benchmarks/stream.py``: app -> NATS JetStream R3 -> ingest -> PostgreSQL, and the stream
sink's request cost; needs nats-server and PostgreSQL; events from ``BENCH_STREAM_EVENTS``, 100,000), and
``tracking`` (``benchmarks/tracking.py``: model change tracking against django-auditlog,
django-simple-history and django-pghistory; flags from ``BENCH_TRACKING_ARGS``).
``--sections`` picks them (``--sections none`` for none; ``--smoke`` runs none unless named). A section whose
server is missing is reported as not run, with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks import drf_token  # noqa: E402
from benchmarks.requests_worker import SCENARIOS  # noqa: E402

#: Sections run after the throughput tasks, in this order: ``name -> module``. Each module has
#: ``section(smoke: bool) -> dict`` (runs it, prints progress on stderr) and
#: ``section_markdown(result: dict) -> list[str]`` (its part of the report, from a ``## `` heading).
SECTIONS = {
    "load": "benchmarks.load", "partitions": "benchmarks.partitions", "stream": "benchmarks.stream",
    "tracking": "benchmarks.tracking",
}

REFERENCE_PACKAGES = {"easy-audit": "easyaudit", "axes": "axes", "auditlog": "auditlog"}
CORE_VARIANTS = ["bare", "rail", "rail-sync", "rail-drain"]
#: ``--smoke`` checks the harness: the in-process variants only (rail-drain starts a second process).
SMOKE_VARIANTS = ["bare", "rail", "rail-sync"]

#: (scenario, variant, highest ratio to bare) -- issue 16's request targets (issue 5's before them).
RATIO_TARGETS = [
    ("anon_get", "rail", 1.03),
    ("auth_get", "rail", 1.03),
    ("login_failed", "rail", 1.10),
    ("login_failed", "rail-sync", 1.20),
    ("login_success", "rail", 1.10),
    ("emit", "rail", 1.10),
    ("graphql_mutation", "rail", 1.10),
    # The same goals with AUDIT_DELIVERY = "drain" (the drain process's work included through flush()).
    ("login_failed", "rail-drain", 1.10),
    ("login_success", "rail-drain", 1.10),
    ("emit", "rail-drain", 1.10),
    ("graphql_mutation", "rail-drain", 1.10),
    ("graphql_query_1000x5", "rail", 1.03),
    ("drf_token_get", "rail", 1.05),  # issue 14: benchmarks/drf_token.py (ratio to bare DRF)
]
#: Issue 16's emit throughput targets, events/s with every event stored.
EMIT_TARGETS = {"sqlite": 40_000, "postgresql": 30_000}


def env_default(name: str, default: Any, cast: Any = str) -> Any:
    value = os.environ.get(name)
    return cast(value) if value not in (None, "") else default


def int_list(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in str(text).split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny counts on SQLite only (what make test runs); explicit flags still win")
    parser.add_argument("--rounds", type=int, default=env_default("BENCH_ROUNDS", None, int))
    parser.add_argument("--scale", type=float, default=env_default("BENCH_SCALE", None, float),
                        help="multiplies the requests per batch of every scenario (default 1)")
    parser.add_argument("--batches", type=int, default=env_default("BENCH_BATCHES", None, int),
                        help="batches per scenario and variant in each round (default 10)")
    parser.add_argument("--variants", default=None, help="comma-separated (default: core + installed references)")
    parser.add_argument("--scenarios", default="", help="comma-separated request scenarios (default all)")
    parser.add_argument("--baseline", default=None,
                        help="a checkout of another revision: adds rail@baseline and rail-sync@baseline, run by its code")
    parser.add_argument("--databases", default=env_default("BENCH_DATABASES", None),
                        help="throughput backends: sqlite,postgresql (default both when PostgreSQL answers)")
    parser.add_argument("--emit-count", type=int, default=env_default("BENCH_EMIT_COUNT", None, int))
    parser.add_argument("--export-rows", type=int, default=env_default("BENCH_EXPORT_ROWS", None, int))
    parser.add_argument("--summary-rows", default=env_default("BENCH_SUMMARY_ROWS", None),
                        help="comma-separated table sizes for summary (default 1000000,10000000)")
    parser.add_argument("--cleanup-rows", type=int, default=env_default("BENCH_CLEANUP_ROWS", None, int))
    parser.add_argument("--skip-requests", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--sections", default=env_default("BENCH_SECTIONS", None),
                        help=f"comma-separated sections to run after throughput ({', '.join(SECTIONS)}), or none "
                             "(default: all; none with --smoke)")
    parser.add_argument("--fresh", action="store_true", help="refill the kept large-table databases")
    parser.add_argument("--work-dir", default=env_default("BENCH_WORK_DIR", None))
    parser.add_argument("--json", default=None,
                        help="write the results as JSON here (default benchmarks/output/latest.json)")
    parser.add_argument("--markdown", default=None,
                        help="write the Markdown report here (default benchmarks/output/latest.md)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "rounds": 1 if smoke else 5,
        "scale": 0.02 if smoke else 1.0,
        "batches": 2 if smoke else 10,
        "databases": "sqlite" if smoke else None,
        "emit_count": 200 if smoke else 50_000,
        "export_rows": 500 if smoke else 1_000_000,
        "summary_rows": "500" if smoke else "1000000,10000000",
        "cleanup_rows": 500 if smoke else 1_000_000,
        "variants": ",".join(SMOKE_VARIANTS) if smoke else None,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.sections is None:
        args.sections = "none" if smoke else ",".join(SECTIONS)
    args.sections = [] if args.sections == "none" else [n for n in args.sections.split(",") if n]
    unknown = [n for n in args.sections if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if args.rounds < 1 or args.batches < 1:
        parser.error("--rounds and --batches must be at least 1")
    return args


def postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def choose_variants(requested: str | None, baseline: str | None = None) -> list[str]:
    if requested:
        return [v for v in requested.split(",") if v]
    found = [v for v, module in REFERENCE_PACKAGES.items() if importlib.util.find_spec(module) is not None]
    with_baseline = ["rail@baseline", "rail-sync@baseline"] if baseline else []
    return CORE_VARIANTS + with_baseline + found


def worker_process(variant: str, env: dict[str, str], baseline: str | None) -> tuple[str, str, Path, dict[str, str]]:
    """``(script, variant name for it, cwd, env)``: a ``name@baseline`` variant runs the baseline checkout's code."""
    name, _, where = variant.partition("@")
    if where != "baseline":
        return str(HERE / "requests_worker.py"), variant, ROOT, env
    if not baseline:
        raise SystemExit(f"variant {variant} needs --baseline DIR")
    tree = Path(baseline).resolve()
    return str(tree / "benchmarks" / "requests_worker.py"), name, tree, {**env, "PYTHONPATH": str(tree)}


def run_child(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
    completed = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"benchmark process failed: {shlex.join(args)}\n{completed.stdout}\n{completed.stderr}")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- request scenarios ------------------------------------------------------------


class Worker:
    """One variant's ``requests_worker.py serve`` process for one round."""

    def __init__(self, variant: str, template: Path, scale: float, env: dict[str, str], log: Path,
                 baseline: str | None = None) -> None:
        self.variant, self.log_path = variant, log
        self.log = open(log, "w")  # noqa: SIM115 (closed in quit)
        script, name, cwd, env = worker_process(variant, env, baseline)
        self.process = subprocess.Popen(
            [sys.executable, script, "serve", "--variant", name, "--template", str(template), "--scale", str(scale)],
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        self.read()  # {"ready": variant}

    def read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise SystemExit(f"benchmark process {self.variant} failed:\n{self.log_path.read_text()[-3000:]}")
        return json.loads(line)

    def ask(self, op: str, scenario: str) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"op": op, "scenario": scenario}) + "\n")
        self.process.stdin.flush()
        return self.read()

    def quit(self) -> None:
        try:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait(timeout=60)
        self.log.close()


def run_requests(opts: argparse.Namespace, variants: list[str], work: Path, env: dict[str, str]) -> dict[str, Any]:
    templates = {}
    for variant in variants:
        templates[variant] = work / f"template-{variant}.sqlite3"
        script, name, cwd, child_env = worker_process(variant, env, opts.baseline)
        run_child([script, "prepare", "--variant", name, "--db", str(templates[variant])], child_env, cwd)
    names = [n for n in opts.scenarios.split(",") if n]
    scenarios = [s for s in SCENARIOS if not names or s.name in names]
    rounds: list[dict[str, Any]] = []
    for number in range(opts.rounds):
        workers = {v: Worker(v, templates[v], opts.scale, env, work / f"worker-{v}.log", opts.baseline)
                   for v in variants}
        result: dict[str, Any] = {v: {} for v in variants}
        try:
            for scenario in scenarios:
                taking = [v for v in variants if scenario.variants is None or v.partition("@")[0] in scenario.variants]
                for variant in taking:
                    workers[variant].ask("warm", scenario.name)
                batches: dict[str, list] = {v: [] for v in taking}
                for index in range(opts.batches):
                    # Variant after variant, batch after batch; the start rotates so none is always first.
                    shift = (number * opts.batches + index) % len(taking)
                    for variant in taking[shift:] + taking[:shift]:
                        batches[variant].append(workers[variant].ask("batch", scenario.name))
                for variant in taking:
                    rows = workers[variant].ask("done", scenario.name)["rows_added"]
                    result[variant][scenario.name] = {
                        "batches": batches[variant], "rows_added": rows,
                        "requests": sum(b["requests"] for b in batches[variant]),
                    }
        finally:
            for w in workers.values():
                w.quit()
        rounds.append(result)
        print(f"  round {number + 1}/{opts.rounds} done (load {load()[0]})", file=sys.stderr)
    return summarise_rounds(rounds, variants, scenarios)


def _paired_ratio(mine: list[dict], bare: list[dict], key: str) -> float:
    """Median over the round's batches of (this variant / bare), each pair measured back to back."""
    return statistics.median(m[key] / b[key] for m, b in zip(mine, bare, strict=True))


def summarise_rounds(rounds: list[dict[str, Any]], variants: list[str], scenarios: list[Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in scenarios:
        rows = {}
        for variant in variants:
            per_round = [r[variant][scenario.name] for r in rounds if scenario.name in r[variant]]
            if not per_round:
                continue
            figures = [statistics.median(b["wall_us"] for b in x["batches"]) for x in per_round]
            cpu = [statistics.median(b["cpu_us"] for b in x["batches"]) for x in per_round]
            entry = {
                "median_us": statistics.median(figures), "min_us": min(figures), "max_us": max(figures),
                "cpu_median_us": statistics.median(cpu), "rounds_us": figures,
                "requests": sum(x["requests"] for x in per_round),
                "rows_added": sum(x["rows_added"] for x in per_round),
            }
            if variant != "bare":
                pairs = [(r[variant][scenario.name]["batches"], r["bare"][scenario.name]["batches"]) for r in rounds]
                ratios = [_paired_ratio(mine, bare, "wall_us") for mine, bare in pairs]
                cpu_ratios = [_paired_ratio(mine, bare, "cpu_us") for mine, bare in pairs]
                entry.update(ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                             rounds_ratio=ratios, cpu_ratio=statistics.median(cpu_ratios))
            rows[variant] = entry
        summary[scenario.name] = {"title": scenario.title, "variants": rows}
    return summary


# -- throughput -------------------------------------------------------------------


def run_throughput(opts: argparse.Namespace, databases: list[str], work: Path, env: dict[str, str]) -> list[dict]:
    script = str(HERE / "throughput.py")
    jobs: list[list[str]] = []
    for db in databases:
        jobs.append(["emit", "--db", db, "--async", "1", "--count", str(opts.emit_count)])
        jobs.append(["emit", "--db", db, "--async", "0", "--count", str(max(1, opts.emit_count // 5))])
        jobs.append(["emit", "--db", db, "--async", "1", "--delivery", "drain", "--count", str(opts.emit_count)])
    for db in databases:
        jobs.append(["export", "--db", db, "--rows", str(opts.export_rows), "--format", "jsonl"])
        jobs.append(["export", "--db", db, "--rows", str(opts.export_rows), "--format", "csv"])
    summary_sizes = int_list(opts.summary_rows)
    for db in databases:
        for rows in summary_sizes:
            if db == "sqlite" and rows > 1_000_000 and len(summary_sizes) > 1:
                continue  # the 10M-row summary is a PostgreSQL target
            jobs.append(["summary", "--db", db, "--rows", str(rows)])
    for db in databases:
        jobs.append(["cleanup", "--db", db, "--rows", str(opts.cleanup_rows)])
    results = []
    for job in jobs:
        out = work / "throughput.json"
        extra = ["--fresh"] if opts.fresh and job[0] in ("export", "summary") else []
        started = time.perf_counter()
        run_child([script, *job, *extra, "--out", str(out)], env)
        result = json.loads(out.read_text())
        result["wall_s"] = time.perf_counter() - started
        results.append(result)
        print(f"  {' '.join(job)}: done in {result['wall_s']:.1f}s (load {load()[0]})", file=sys.stderr)
    return results


# -- report -----------------------------------------------------------------------


def fmt_us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def targets(requests: dict[str, Any], throughput: list[dict]) -> list[dict[str, Any]]:
    """Every issue-5 target with the figure measured in this run (None when not measured)."""
    rows = []
    for scenario, variant, limit in RATIO_TARGETS:
        entry = requests.get(scenario, {}).get("variants", {}).get(variant)
        figure = entry.get("ratio") if entry else None
        label = f"{scenario} ({variant}) ratio to bare"
        shown = None if figure is None else f"{figure:.3f}x (CPU time {entry['cpu_ratio']:.3f}x)"
        rows.append({"target": label, "goal": f"<= {limit:.2f}x", "figure": shown,
                     "met": None if figure is None else figure <= limit})

    def find(task: str, **match: Any) -> dict | None:
        hits = [r for r in throughput if r["task"] == task and all(r.get(k) == v for k, v in match.items())]
        return max(hits, key=lambda r: r.get("rows", 0)) if hits else None

    for delivery in ("thread", "drain"):
        for db, goal in EMIT_TARGETS.items():
            r = find("emit", db=db, delivery=delivery, **{"async": True})
            ok = r and r["stored"] == r["count"] and r["events_per_s"] >= goal
            how = "async batching" if delivery == "thread" else 'AUDIT_DELIVERY="drain"'
            rows.append({"target": f"emit, {how}, {db} (every event stored)", "goal": f">= {goal:,} events/s",
                         "figure": None if not r else f"{r['events_per_s']:,.0f} events/s, {r['stored']:,}/{r['count']:,} stored",
                         "met": None if not r else bool(ok)})
    for db in ("sqlite", "postgresql"):
        r = find("export", db=db, format="jsonl")
        if r:
            rows.append({"target": f"export jsonl, {db}, {r['rows']:,} rows", "goal": ">= 50,000 rows/s, RSS growth < 100 MiB",
                         "figure": f"{r['rows_per_s']:,.0f} rows/s, +{r['rss_growth_mib']:.0f} MiB",
                         "met": r["rows_per_s"] >= 50_000 and r["rss_growth_mib"] < 100})
    r = find("summary", db="postgresql")
    rows.append({"target": "summary --hours 24, PostgreSQL" + (f", {r['rows']:,} rows" if r else ""), "goal": "< 1 s",
                 "figure": None if not r else f"{r['seconds'] * 1000:.0f} ms", "met": None if not r else r["seconds"] < 1})
    return rows


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "## Run", "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['started']} (git {meta['git']})",
        f"- machine: {meta['cpus']} CPUs, {meta['platform']}, Python {meta['python']}, Django {meta['django']}",
        f"- load average (1/5/15 min) at start {meta['load_start']}, at end {meta['load_end']}",
        f"- rounds: {meta['rounds']}, batches per round: {meta['batches']}, scale: {meta['scale']}, "
        f"variants: {', '.join(meta['variants'])}",
        *([f"- baseline (the @baseline variants): `{meta['baseline']}`"] if meta.get("baseline") else []),
        "",
    ]
    lines += ["## Targets", "", "| target | goal | this run | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['goal']} | {t['figure'] or 'not measured'} | {met} |")
    requests = report["requests"]
    if requests:
        variants = meta["variants"]
        lines += ["", "## Request overhead (per request; ratio to bare measured within each round)", "",
                  "Each cell: median wall time per request over rounds (min–max); the median ratio to bare "
                  "(min–max over rounds), each round's ratio being the median of back-to-back batch pairs; "
                  "the same ratio in process CPU time; rows: audit rows the variant stored / timed requests.", "",
                  "| scenario | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
        for name, data in requests.items():
            cells = []
            for variant in variants:
                e = data["variants"].get(variant)
                if not e:
                    cells.append("n/a")
                    continue
                cell = f"{fmt_us(e['median_us'])} ({fmt_us(e['min_us'])}–{fmt_us(e['max_us'])})"
                if variant != "bare" and "ratio" in e:
                    cell += (f"<br>**{e['ratio']:.3f}×** ({e['ratio_min']:.2f}–{e['ratio_max']:.2f})"
                             f"<br>CPU {e['cpu_ratio']:.3f}×")
                if variant != "bare":
                    cell += f"<br>rows {e['rows_added']:,}/{e['requests']:,}"
                cells.append(cell)
            lines.append(f"| {name}: {data['title']} | " + " | ".join(cells) + " |")
    throughput = report["throughput"]
    if throughput:
        lines += ["", "## Throughput", "", "| task | database | size | result | detail |", "|---|---|---|---|---|"]
        for r in throughput:
            if r["task"] == "emit":
                how = f"SECURITY_EVENT_ASYNC={r['async']}" + (', AUDIT_DELIVERY="drain"' if r.get("delivery") == "drain" else "")
                lines.append(f"| emit, {how} | {r['db']} | {r['count']:,} events | "
                             f"**{r['events_per_s']:,.0f} events/s** | {r['stored']:,} stored; emit loop "
                             f"{r['emit_returned_s']:.2f} s, with flush {r['total_s']:.2f} s |")
            elif r["task"] == "export":
                lines.append(f"| export --format {r['format']} | {r['db']} | {r['rows']:,} rows | "
                             f"**{r['rows_per_s']:,.0f} rows/s** | {r['seconds']:.1f} s, peak RSS +{r['rss_growth_mib']:.0f} MiB "
                             f"({r['rss_before_mib']:.0f} → {r['rss_peak_mib']:.0f} MiB), {r['bytes'] / 2**20:,.0f} MiB written |")
            elif r["task"] == "summary":
                lines.append(f"| summary --hours 24 | {r['db']} | {r['rows']:,} rows | **{r['seconds'] * 1000:,.0f} ms** | "
                             f"min {r['min_s'] * 1000:,.0f} ms, max {r['max_s'] * 1000:,.0f} ms |")
            elif r["task"] == "cleanup":
                lines.append(f"| cleanup --days 90 | {r['db']} | {r['rows']:,} expired rows | **{r['seconds']:.1f} s** "
                             f"({r['rows_per_s']:,.0f} rows/s) | {r['rows_left']:,} rows left (expected {r['expected_left']:,}) |")
    for name, result in report.get("sections", {}).items():
        lines += ["", *importlib.import_module(SECTIONS[name]).section_markdown(result)]
    return "\n".join(lines) + "\n"


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    import django

    variants = choose_variants(opts.variants, opts.baseline)
    if "bare" not in variants:
        variants = ["bare", *variants]
    databases = [d for d in (opts.databases or "sqlite,postgresql").split(",") if d]
    if "postgresql" in databases and not postgres_answers():
        print("PostgreSQL is not running on 127.0.0.1:5432: its throughput tasks are skipped", file=sys.stderr)
        databases.remove("postgresql")
    work_root = Path(opts.work_dir) if opts.work_dir else Path(tempfile.gettempdir()) / "rail-django-bench"
    work_root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_WORK_DIR": str(work_root), "PYTHONPATH": str(ROOT)}
    meta = {
        "command": shlex.join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_revision(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "django": django.get_version(), "load_start": load(),
        "rounds": opts.rounds, "batches": opts.batches, "scale": opts.scale, "variants": variants, "databases": databases,
        "baseline": opts.baseline,
    }
    with tempfile.TemporaryDirectory(dir=work_root) as scratch:
        work = Path(scratch)
        requests = {} if opts.skip_requests else run_requests(opts, variants, work, env)
        if not opts.skip_requests and drf_token.wanted(opts.scenarios):
            requests.update(drf_token.run(opts.rounds, opts.batches, max(4, round(300 * opts.scale))))
        throughput = [] if opts.skip_throughput else run_throughput(opts, databases, work, env)
    sections = {name: importlib.import_module(SECTIONS[name]).section(opts.smoke) for name in opts.sections}
    meta["load_end"] = load()
    report = {"meta": meta, "requests": requests, "throughput": throughput, "sections": sections}
    report["targets"] = targets(requests, throughput)
    text = markdown(report)
    print(text)
    output = HERE / "output"  # ignored by git
    for path, content in ((opts.json or output / "latest.json", json.dumps(report, indent=2)),
                          (opts.markdown or output / "latest.md", text)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    return report


if __name__ == "__main__":
    main()
