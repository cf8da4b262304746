"""The sample project tracks its Order model: an approval shows on the order's admin History page."""

from __future__ import annotations

import uuid

import requests

from tests.sample_project.conftest import PASSWORD, login, post_form


def _session(server, username: str) -> requests.Session:
    session = requests.Session()
    response = login(session, server, username, PASSWORD, **{"User-Agent": f"sample-tracking/{uuid.uuid4().hex}"})
    assert response.status_code == 302, response.text
    return session


def test_approval_is_on_the_orders_admin_history_page(sample_server):
    pk = sample_server.query("SELECT id FROM orders_order WHERE number = 'A-1005'")[0][0]
    clerk = _session(sample_server, "alice")
    assert post_form(clerk, sample_server, f"/orders/{pk}/approve/").status_code == 302

    [update] = sample_server.wait_for_events(
        "event_type = 'data.update' AND json_extract(additional_data, '$.resource.id') = ?", (str(pk),))
    changes = update["additional_data"]["context"]["changes"]
    assert changes["status"] == ["pending", "approved"] and update["username"] == "alice"

    admin = _session(sample_server, "admin")
    page = admin.get(sample_server.url(f"/admin/orders/order/{pk}/history/"))
    assert page.status_code == 200
    assert "History: A-1005" in page.text
    assert '<th scope="row">status</th><td>pending</td><td>approved</td>' in page.text
    assert "alice" in page.text

    # A clerk is not staff: the admin (and its history pages) stays closed to her.
    refused = clerk.get(sample_server.url(f"/admin/orders/order/{pk}/history/"), allow_redirects=False)
    assert refused.status_code == 302 and "/admin/login/" in refused.headers["Location"]
