"""An application process of the stream tests: emits events through ``security.emit`` with AUDIT_STREAM on.

``python -m tests.stream.app COUNT IDS_FILE [RATE]``: emits COUNT ``data.read`` events (at most RATE a second
when given), writes their ids to IDS_FILE, then waits until every event is acknowledged by JetStream (the
writer's queue flushed and no journal segment spooled) and exits 0; 2 if that did not happen in time.
"""

import sys
import time

from tests.stream.setup_env import configure


def main() -> None:
    configure()
    from rail_django.delivery.dispatcher import dispatcher
    from rail_django.security import EventType, security

    count, ids_file = int(sys.argv[1]), sys.argv[2]
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    ids = []
    started = time.monotonic()
    for n in range(count):
        ids.append(str(security.emit(EventType.DATA_READ, action="stream load", context={"n": n}).event_id))
        if rate and n % 100 == 99:
            ahead = (n + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    with open(ids_file, "w") as out:
        out.write("\n".join(ids) + "\n")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        journal = dispatcher.journal
        if security.flush(timeout=5) and (journal is None or not journal.spooled()):
            print("delivered", flush=True)
            sys.exit(0)
        time.sleep(0.5)
    print("not delivered in time", flush=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
