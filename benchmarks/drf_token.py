"""A Django REST framework view authenticated by ``TokenAuthentication``: bare DRF against DRF with rail-django.

    python benchmarks/drf_token.py [--rounds 3] [--batches 10] [--per-batch 300]

One process per variant (``bare``: the benchmark project plus DRF;
``rail`` / ``rail-sync``: the same plus rail-django as those variants install it),
each with its own copy of a migrated SQLite file holding one user and one
token. Requests go through ``WSGIHandler`` with a prepared environ (no
network, no test client), ``Authorization: Token <key>``, to a DRF
``APIView`` that reads ``request.user`` and records nothing itself: the
figure is what rail-django adds to an authenticated DRF request that
succeeds (the context middleware, the DRF response hook, the integrations
installed in ``ready()``). Batches alternate between the variants, and the
ratio of each round is the median of back-to-back batch pairs, as in
``run.py``. ``run.py`` runs it as the ``drf_token_get`` scenario.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCENARIO = "drf_token_get"
TITLE = "DRF GET, TokenAuthentication (bare DRF vs DRF + rail-django)"
VARIANTS = ("bare", "rail", "rail-sync")


def __getattr__(name: str) -> Any:
    """``urlpatterns`` when Django loads this module as the URLconf (DRF needs configured settings first)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import path
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Me(APIView):
        authentication_classes = [TokenAuthentication]
        permission_classes = [IsAuthenticated]

        def get(self, request):
            return Response({"user": request.user.get_username()})

    return [path("api/me/", Me.as_view())]


def wanted(scenarios: str) -> bool:
    """Whether ``run.py --scenarios`` asks for this scenario (all by default) and DRF is installed."""
    import importlib.util

    names = [n for n in scenarios.split(",") if n]
    return (not names or SCENARIO in names) and importlib.util.find_spec("rest_framework") is not None


def setup(variant: str, db: str) -> None:
    os.environ.update(BENCH_VARIANT=variant, BENCH_DB="sqlite", BENCH_DB_NAME=db)
    from django.conf import settings

    from benchmarks.project import settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["INSTALLED_APPS"] = [*base.INSTALLED_APPS, "rest_framework", "rest_framework.authtoken"]
    values["ROOT_URLCONF"] = "benchmarks.drf_token"
    settings.configure(**values)
    import django

    django.setup()


def prepare(db: str) -> str:
    """Migrate ``db`` (with rail-django's tables too) and create the user and token; returns the key."""
    setup("rail", db)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    return Token.objects.create(user=user).key


def environ(key: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/api/me/", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "bench.example", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "bench.example", "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "bench/1", "HTTP_AUTHORIZATION": f"Token {key}", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "CONTENT_LENGTH": "0",
    }


def serve(variant: str, db: str, key: str, per_batch: int) -> None:
    """One variant's process: answers ``batch`` lines with the batch's wall and CPU time per request."""
    setup(variant, db)
    from django.core.handlers.wsgi import WSGIHandler

    handler, env = WSGIHandler(), environ(key)
    status: list[str] = []

    def start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
        status[:] = [code]
        return lambda data: None

    def call() -> bytes:
        body = b"".join(handler(dict(env, **{"wsgi.input": io.BytesIO(b"")}), start_response))
        return body

    body = call()
    if not status[0].startswith("200") or b'"bench"' not in body:
        raise SystemExit(f"{variant}: {status} {body[:200]!r}")
    for _ in range(per_batch // 4):
        call()
    replies, sys.stdout = sys.stdout, sys.stderr
    replies.write(json.dumps({"ready": variant}) + "\n")
    replies.flush()
    for line in sys.stdin:
        if line.strip() != "batch":
            break
        cpu, started = time.process_time(), time.perf_counter()
        for _ in range(per_batch):
            call()
        wall = (time.perf_counter() - started) / per_batch * 1e6
        replies.write(json.dumps({"wall_us": wall, "cpu_us": (time.process_time() - cpu) / per_batch * 1e6}) + "\n")
        replies.flush()


def run(rounds: int = 3, batches: int = 10, per_batch: int = 300) -> dict[str, Any]:
    """Time the scenario; returns ``{SCENARIO: {"title", "variants"}}`` in ``run.py``'s summary form."""
    with tempfile.TemporaryDirectory(prefix="rail-drf-bench-") as folder:
        template = str(Path(folder) / "template.sqlite3")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_WORK_DIR": folder}
        key = subprocess.run([sys.executable, __file__, "prepare", template], env=env, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        per_round: dict[str, list[list[dict]]] = {v: [] for v in VARIANTS}
        for number in range(rounds):
            workers = {}
            for variant in VARIANTS:
                db = str(Path(folder) / f"{variant}-{number}.sqlite3")
                Path(db).write_bytes(Path(template).read_bytes())
                workers[variant] = subprocess.Popen(
                    [sys.executable, __file__, "serve", variant, db, key, str(per_batch)], env=env,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                workers[variant].stdout.readline()  # ready
            results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            for index in range(batches):
                shift = (number * batches + index) % len(VARIANTS)  # none is always first
                order = VARIANTS[shift:] + VARIANTS[:shift]
                for variant in order:
                    workers[variant].stdin.write("batch\n")
                    workers[variant].stdin.flush()
                    results[variant].append(json.loads(workers[variant].stdout.readline()))
            for worker in workers.values():
                worker.stdin.close()
                worker.wait(timeout=60)
            for variant in VARIANTS:
                per_round[variant].append(results[variant])
    return {SCENARIO: {"title": TITLE, "variants": _summary(per_round, per_batch * batches)}}


def _summary(per_round: dict[str, list[list[dict]]], requests_per_round: int) -> dict[str, Any]:
    summary = {}
    for variant, rounds in per_round.items():
        figures = [statistics.median(b["wall_us"] for b in batches) for batches in rounds]
        entry = {"median_us": statistics.median(figures), "min_us": min(figures), "max_us": max(figures),
                 "requests": requests_per_round * len(rounds), "rows_added": 0}
        if variant != "bare":
            ratios = [statistics.median(m["wall_us"] / b["wall_us"] for m, b in zip(mine, bare, strict=True))
                      for mine, bare in zip(rounds, per_round["bare"], strict=True)]
            cpu = [statistics.median(m["cpu_us"] / b["cpu_us"] for m, b in zip(mine, bare, strict=True))
                   for mine, bare in zip(rounds, per_round["bare"], strict=True)]
            entry.update(ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                         rounds_ratio=ratios, cpu_ratio=statistics.median(cpu))
        summary[variant] = entry
    return summary


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "prepare":
        print(prepare(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--per-batch", type=int, default=300)
    opts = parser.parse_args()
    result = run(opts.rounds, opts.batches, opts.per_batch)[SCENARIO]
    print(json.dumps(result, indent=2))
    rail = result["variants"]["rail"]
    print(f"{TITLE}: rail/bare = {rail['ratio']:.3f}x (rounds {[round(r, 3) for r in rail['rounds_ratio']]}), "
          f"CPU {rail['cpu_ratio']:.3f}x", file=sys.stderr)


if __name__ == "__main__":
    main()
