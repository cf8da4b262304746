"""Instructions per request under ``valgrind --tool=callgrind``: a figure the machine's load cannot move.

    python benchmarks/instructions.py                      # every scenario below, 200 requests measured
    python benchmarks/instructions.py --scenarios drf_token_get --requests 400

Wall-clock ratios (``run.py``) wander by a few percent on a shared or busy
machine, which is as large as the targets they are checked against (1.01x,
1.05x). Callgrind counts the instructions a process executes, whatever else
runs beside it. Each variant's process is run twice under callgrind, once
serving ``W`` warm-up requests and once ``W + N``; the difference divided by
``N`` is the instructions of one request, start-up excluded. Every thread is
counted and the rail-django variants end with ``security.flush()``, so the
background writer's work for those requests (its INSERTs into SQLite)
is included. ``PYTHONHASHSEED`` is fixed so both runs hash alike, and the
cyclic garbage collector is off while the requests run: its full
collections land on different requests in different variants and would
swamp a difference of a few percent (``run.py``'s wall-clock figures include
it).

Scenarios and what they compare:

* ``anon_get`` / ``auth_get``: the benchmark project (``benchmarks/project``)
  bare against rail-django, anonymous and logged-in GETs that record nothing.
* ``drf_token_get``: a DRF view with ``TokenAuthentication``, bare DRF against
  DRF with rail-django (``benchmarks/drf_token.py``).
* ``tracked_save``: a logged-in POST whose view changes three fields of a
  tracked model and saves it (``benchmarks/tracking_project``), untracked
  against tracked: the cost of model change tracking, one ``data.update``
  event stored per request.

Instructions are not time (a cache miss or a system call costs more than its
count), so this complements ``run.py``'s ratios; it does not replace them.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: scenario -> (baseline variant, measured variant)
SCENARIOS: dict[str, tuple[str, str]] = {
    "anon_get": ("bare", "rail"),
    "auth_get": ("bare", "rail"),
    "drf_token_get": ("bare", "rail"),
    "tracked_save": ("untracked", "rail"),
}
WARMUP = 50


# -- inside one variant's process ------------------------------------------------------------------


def _request_loop(scenario: str, variant: str, folder: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """``(one request, flush)`` for ``variant`` of ``scenario``; the database lives in ``folder``."""
    if scenario in ("anon_get", "auth_get"):
        from benchmarks import requests_worker as worker

        db = str(Path(folder) / f"{variant}.sqlite3")
        worker.prepare(variant, db)
        from django.core.handlers.wsgi import WSGIHandler

        client = worker.Client(WSGIHandler())
        anonymous, _token, logged_in = worker.login_state(client)
        path = "/plain/" if scenario == "anon_get" else "/me/"
        env = client.environ("GET", path, cookies=logged_in if scenario == "auth_get" else anonymous)

        def one() -> None:
            status, _headers, _body = client.call(env)
            assert status == 200, status

    elif scenario == "drf_token_get":
        from benchmarks import drf_token

        db = str(Path(folder) / f"{variant}.sqlite3")
        key = drf_token.prepare(db) if variant == "rail" else _drf_bare_prepare(db)
        from django.core.handlers.wsgi import WSGIHandler

        handler, env = WSGIHandler(), drf_token.environ(key)

        def one() -> None:
            statuses: list[str] = []
            body = b"".join(handler(dict(env, **{"wsgi.input": io.BytesIO(b"")}),
                                    lambda status, headers, exc_info=None: statuses.append(status)))
            assert statuses[0].startswith("200") and b'"bench"' in body, (statuses, body[:200])

    elif scenario == "tracked_save":
        from benchmarks import tracking

        db = str(Path(folder) / f"{variant}.sqlite3")
        tracking.prepare(variant, "sqlite", db, 10)
        bench = tracking.Worker(variant, "sqlite", db, 1)
        state = {"n": 0}

        def one() -> None:
            env, body = bench.requests[state["n"] % 2]
            state["n"] += 1
            statuses: list[str] = []
            result = bench.handler(dict(env, **{"wsgi.input": io.BytesIO(body)}),
                                   lambda status, headers, exc_info=None: statuses.append(status))
            b"".join(result)
            result.close()
            assert statuses[0][:1] in "23", statuses

    else:
        raise SystemExit(f"unknown scenario {scenario!r}")

    def flush() -> None:
        from django.conf import settings

        if "rail_django" in settings.INSTALLED_APPS:
            from rail_django.security import security

            security.flush()

    return one, flush


def _drf_bare_prepare(db: str) -> str:
    """The DRF scenario's ``bare`` variant migrates without rail-django installed."""
    from benchmarks import drf_token

    drf_token.setup("bare", db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    return Token.objects.create(user=user).key


def serve(scenario: str, variant: str, folder: str, count: int) -> None:
    one, flush = _request_loop(scenario, variant, folder)
    # Full collections would fall on different requests in the two variants and swamp the difference.
    gc.collect()
    gc.disable()
    for _ in range(count):
        one()
    flush()


# -- the parent ------------------------------------------------------------------------------------


def _callgrind(scenario: str, variant: str, count: int, folder: Path) -> int:
    """Total instructions (every thread) of one process serving ``count`` requests."""
    work = folder / f"{scenario}-{variant}-{count}"
    work.mkdir()
    out = work / "callgrind.out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0", "BENCH_WORK_DIR": str(work)}
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--dump-instr=no",
         sys.executable, __file__, "serve", scenario, variant, str(work), str(count)],
        env=env, check=True, capture_output=True, text=True)
    total = 0
    for part in work.glob("callgrind.out.*"):
        match = re.search(r"^(?:summary|totals):\s+(\d+)", part.read_text(errors="replace"), re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def measure(scenario: str, requests: int) -> dict[str, Any]:
    baseline, variant = SCENARIOS[scenario]
    per_request = {}
    with tempfile.TemporaryDirectory(prefix="rail-instr-") as folder:
        for name in (baseline, variant):
            short = _callgrind(scenario, name, WARMUP, Path(folder))
            long = _callgrind(scenario, name, WARMUP + requests, Path(folder))
            per_request[name] = (long - short) / requests
    return {"scenario": scenario, "baseline": baseline, "variant": variant, "requests": requests,
            "instructions": per_request, "ratio": per_request[variant] / per_request[baseline]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--requests", type=int, default=200, help="requests measured per variant (default 200)")
    opts = parser.parse_args()
    names = [n for n in opts.scenarios.split(",") if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or opts.requests < 1:
        parser.error(f"unknown scenario {unknown[0]!r}" if unknown else "--requests must be at least 1")
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    for name in names:
        result = measure(name, opts.requests)
        counts = result["instructions"]
        print(json.dumps(result))
        print(f"{name}: {result['variant']} {counts[result['variant']]:,.0f} / {result['baseline']} "
              f"{counts[result['baseline']]:,.0f} instructions per request = {result['ratio']:.3f}x",
              file=sys.stderr)


if __name__ == "__main__":
    main()
