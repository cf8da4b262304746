"""Time the redactor on the strings events carry most (user agents, timestamps, change dicts).

Run it against two trees to compare them (old first, then new, alternately)::

    .venv/bin/python benchmarks/redaction_scrub.py OLD_TREE
    .venv/bin/python benchmarks/redaction_scrub.py .
"""

from __future__ import annotations

import sys
import timeit

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")

from rail_django.conf.registry import DEFAULT_REDACTION_FIELDS  # noqa: E402
from rail_django.events.redaction import Redactor  # noqa: E402

CASES = {
    "Firefox user agent": "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "ISO timestamp": "2026-12-03T16:00:00.123456+00:00",
    "resource name": "Invoice 12: draft",
}
CHANGES = {"changes": {"status": ["draft", "paid"], "amount": ["100.00", "120.00"],
                       "due": ["2026-12-01T00:00:00+00:00", "2026-12-03T00:00:00+00:00"]}}


def main() -> None:
    redactor = Redactor(DEFAULT_REDACTION_FIELDS, "***")
    count = 100_000
    for label, text in CASES.items():
        print(f"scrub_text, {label}: {timeit.timeit(lambda text=text: redactor.scrub_text(text), number=count) / count * 1e6:.2f} us")
    print(f"clean, 3-field change dict: {timeit.timeit(lambda: redactor.clean(CHANGES), number=count) / count * 1e6:.2f} us")


if __name__ == "__main__":
    main()
