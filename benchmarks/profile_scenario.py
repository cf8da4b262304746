"""Profile one benchmark scenario: where does the time of a request (or of emit) go?

    python benchmarks/profile_scenario.py login_failed --variant rail            # pyinstrument call tree
    python benchmarks/profile_scenario.py anon_get --variant rail --cprofile     # cProfile, top functions
    python benchmarks/profile_scenario.py emit-throughput --variant rail --count 20000

A request scenario runs through the same WSGI client as the benchmark
(``benchmarks/requests_worker.py``) after a warm-up; ``emit-throughput`` runs
``security.emit`` in a loop and flushes. pyinstrument (``pip install -e
.[bench]``) samples the wall time of the profiled (request) thread and shows
the call tree, so time lost waiting for the background writer shows up where
it happens; ``--cprofile`` counts that thread's function calls instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import requests_worker as worker  # noqa: E402


def request_loop(variant: str, name: str, count: int, work: Path):
    template = work / f"profile-{variant}.sqlite3"
    worker.prepare(variant, str(template))
    from django.core.handlers.wsgi import WSGIHandler

    flush = lambda: None  # noqa: E731
    if variant in ("rail", "rail-sync"):
        from rail_django.security import security

        flush = security.flush
    client = worker.Client(WSGIHandler())
    anonymous, token, logged_in = worker.login_state(client)
    scenario = next(s for s in worker.SCENARIOS if s.name == name)
    env, body = worker.request_for(scenario, client, anonymous, token, logged_in)
    for _ in range(max(10, count // 10)):
        client.call(env, body)
    flush()

    def loop() -> None:
        for _ in range(count):
            client.call(env, body)
        flush()

    return loop


def emit_loop(variant: str, count: int, work: Path):
    worker.prepare(variant, str(work / f"profile-emit-{variant}.sqlite3"))
    from rail_django.security import EventType, security, use_context

    def loop() -> None:
        with use_context({"user_id": "42", "username": "alice", "client_ip": "203.0.113.7"}):
            for i in range(count):
                security.emit(EventType.DATA_READ, action="Viewed order", resource_type="order", resource_id=i,
                              context={"order": i, "fields": ["total", "status"]})
            security.flush()

    return loop


def main() -> None:
    names = [s.name for s in worker.SCENARIOS] + ["emit-throughput"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=names)
    parser.add_argument("--variant", default="rail", choices=sorted(worker.AUDIT_TABLES))
    parser.add_argument("--count", type=int, default=500, help="requests (or events) profiled")
    parser.add_argument("--cprofile", action="store_true", help="cProfile instead of pyinstrument")
    parser.add_argument("--top", type=int, default=30, help="cProfile: functions shown")
    parser.add_argument("--sort", default="tottime", help="cProfile: sort key (tottime, cumulative, ...)")
    parser.add_argument("--only", default="", help="cProfile: show only functions whose path matches this regex")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.scenario == "emit-throughput":
            loop = emit_loop(args.variant, args.count, work)
        else:
            loop = request_loop(args.variant, args.scenario, args.count, work)
        started = time.perf_counter()
        if args.cprofile:
            profile = cProfile.Profile()
            profile.runcall(loop)
            elapsed = time.perf_counter() - started
            stats = pstats.Stats(profile).sort_stats(args.sort)
            stats.print_stats(*([args.only] if args.only else []), args.top)
        else:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
            with profiler:
                loop()
            elapsed = time.perf_counter() - started
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        print(f"{args.scenario} ({args.variant}): {elapsed / args.count * 1e6:,.0f} µs per iteration under the profiler")


if __name__ == "__main__":
    main()
