"""A separate worker process for the cross-process alert test (not a test module).

Run as ``python -m tests.security.alert_worker IP COUNT NAME`` with
``DJANGO_SETTINGS_MODULE=tests.security.alert_worker_settings``: it fails
COUNT logins from IP through the real LoginView (usernames NAME-0, NAME-1, ...)
and prints, as JSON, how many ``security_alert`` signals this process sent.
"""

import json
import sys

import django


def main(ip: str, count: int, name: str) -> None:
    django.setup()
    from django.test import Client

    from rail_django.security import security
    from rail_django.signals import security_alert

    received = []
    security_alert.connect(lambda sender, **kw: received.append(kw["rule"]), weak=False)
    client = Client()
    statuses = [
        client.post("/login/", {"username": f"{name}-{i}", "password": "wrong"}, REMOTE_ADDR=ip).status_code
        for i in range(count)
    ]
    security.flush()
    print(json.dumps({"statuses": statuses, "alerts": received}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
