"""End to end in headless Chromium: the sample project as a person uses it, and what the admin then shows.

Needs Debian's ``chromium`` at /usr/bin/chromium (``make test`` installs it
when run as root with apt-get). Without it the test is skipped locally and
fails when CI=true.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import IN_CI
from tests.docs.markdown_blocks import block
from tests.sample_project.conftest import PASSWORD

pytestmark = pytest.mark.sqlite_only

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
HOSTILE_AGENT = 'Mozilla/5.0 <script>window.__railPwned = 1</script><img src="x" onerror="window.__railPwned = 2">'


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (as root: apt-get install -y chromium; 'make test' does it)"
        if IN_CI:
            pytest.fail(f"{reason}, and CI=true forbids skipping", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(user_agent=HOSTILE_AGENT, viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def output_dir() -> Path:
    path = Path(os.environ.get("RAIL_DJANGO_TEST_OUTPUT") or settings.TEST_OUTPUT) / "e2e"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _not_injected(page) -> None:
    assert page.evaluate("window.__railPwned") is None
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.dialogs == []


def test_a_person_logs_in_records_a_ui_action_and_finds_it_in_the_admin(sample_server, browser_page, output_dir):
    from playwright.sync_api import expect

    page = browser_page
    url = sample_server.url

    # Log in with a wrong, then the right password.
    page.goto(url("/accounts/login/"))
    page.fill("#id_username", "admin")
    page.fill("#id_password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(url("/orders/"))
    expect(page.locator("#whoami")).to_contain_text("admin")

    # The frontend-audit button: fetch() to the GraphQL mutation, with the CSRF token.
    page.click("#log-frontend-audit")
    expect(page.locator("#audit-result")).to_have_text("Recorded as ui.action.")
    mine = sample_server.wait_for_events("user_agent = ?", (HOSTILE_AGENT,), count=3)
    assert [e["event_type"] for e in mine] == ["auth.login.failure", "auth.login.success", "ui.action"]

    # The quick start's JavaScript block, verbatim, from the same page.
    snippet = block("quickstart.md", "js", "async function logFrontendAudit")
    call = "{appName: 'orders', modelName: 'Order', operation: 'export', component: 'OrderList'}"
    assert page.evaluate(f"async () => {{\n{snippet}\nreturn await logFrontendAudit({call});\n}}") == {"ok": True, "error": None}
    mine = sample_server.wait_for_events("user_agent = ?", (HOSTILE_AGENT,), count=4)
    assert mine[3]["event_type"] == "ui.action" and mine[3]["additional_data"]["context"]["component"] == "OrderList"

    # The admin list shows them (newest first), the hostile User-Agent as text on the event page.
    page.goto(url("/admin/rail_django/auditeventmodel/?window=1h"))
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_contain_text("ui.action")
    expect(rows.nth(1)).to_contain_text("ui.action")
    expect(rows.nth(2)).to_contain_text("auth.login.success")
    expect(rows.nth(3)).to_contain_text("auth.login.failure")
    expect(rows.nth(3)).to_contain_text("tried admin")
    page.screenshot(path=str(output_dir / "admin-list.png"), full_page=True)

    rows.nth(3).locator("th a").click()
    expect(page.locator(".field-user_agent .readonly")).to_have_text(HOSTILE_AGENT)
    expect(page.locator(".field-additional_data_pretty pre")).to_contain_text('"username_attempted": "admin"')
    _not_injected(page)

    page.get_by_role("link", name="Same IP address").click()
    expect(page.locator("#changelist-filter")).to_contain_text("127.0.0.1")
    expect(rows.first).to_contain_text("ui.action")

    # The dashboard: our failure among the seeded burst, the hostile agent shown as text.
    page.goto(url("/admin/rail_django/auditeventmodel/dashboard/?window=1h"))
    failed = int(page.locator("#card-login-failure .rail-number").inner_text())
    assert failed >= 13  # the 12-attempt burst seeded by demo_setup, and ours
    assert int(page.locator("#card-alerts .rail-number").inner_text()) >= 2
    expect(page.locator("#recent-failures tbody tr").first).to_contain_text(HOSTILE_AGENT)
    expect(page.locator("#top-ips")).to_contain_text("203.0.113.66")
    expect(page.locator("#recent-alerts")).to_contain_text("failed_logins_per_ip")
    assert page.locator("#rail-chart g.rail-slot").count() == 12
    _not_injected(page)
    screenshot = output_dir / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshots in {output_dir}")
