"""Cost of counting one failed login (``FailedLoginCounter.record_failure``) against Django's Redis cache.

    PYTHONPATH=DIR .venv/bin/python benchmarks/failed_login_counting.py DIR    # DIR: this tree or another checkout

Counts 400 failures from new client IPs against 10 usernames, 5 rounds, alerts not raised (only the
counting and its cache calls are timed); needs Redis on 127.0.0.1:6379 (a fresh key prefix per run).
Run it for two checkouts alternately to compare them (benchmarks/RESULTS.md, issue 16).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

TREE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TREE)
os.environ.update(DJANGO_SETTINGS_MODULE="benchmarks.project.settings", BENCH_VARIANT="rail",
                  BENCH_CACHE_URL="redis://127.0.0.1:6379/0", BENCH_CACHE_PREFIX=f"count-{time.time()}")


def main() -> None:
    import django

    django.setup()
    import rail_django
    from rail_django.alerts import failed_logins

    assert rail_django.__file__.startswith(TREE), f"rail_django imported from {rail_django.__file__}, not {TREE}"
    failed_logins.raise_alert = lambda *args, **kwargs: None  # counting only
    failed_logins.counter.record_failure(client_ip="10.200.0.1", username="warm")  # imports redis-py
    rounds = []
    for number in range(5):
        started = time.perf_counter()
        for i in range(400):
            failed_logins.counter.record_failure(client_ip=f"10.{number}.{i // 4}.{i % 4}", username=f"user{i % 10}")
        rounds.append((time.perf_counter() - started) / 400 * 1e6)
    print(f"{TREE}: us per failed login {[round(x) for x in rounds]}, median {statistics.median(rounds):.0f}")


if __name__ == "__main__":
    main()
