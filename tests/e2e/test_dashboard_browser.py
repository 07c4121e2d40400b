"""The bus dashboard in a real headless Chromium, on the example services.

Debian's ``chromium`` and ``chromium-driver`` (never a downloaded browser), driven by
selenium: log in, watch the three services and their instances appear, place an order
through the HTTP API, open its trace by correlation ID, find a declined card among the
failures. Screenshots go to SERVICEBUS_SCREENSHOT_DIR (docs/img for the README) or to
the test's temporary directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import CARD_DECLINED, Stack

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SAGA = ["inventory.allocate", "pricing.quote", "pricing.charge", "inventory.finalise"]
# Bounded waits: the registry beats at once, records flush every 0.1 s, pages refresh
# every 1.5 s; this machine is shared and slow.
WAIT = 30.0


def browser_binaries() -> tuple[str, str]:
    if CHROMIUM and CHROMEDRIVER:
        return CHROMIUM, CHROMEDRIVER
    message = "no chromium/chromedriver: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def staff(stack: Stack) -> tuple[str, str]:
    """A staff login in the orders database (the project that serves the dashboard)."""
    password = secrets.token_urlsafe(12)
    stack.manage(
        "orders",
        "createsuperuser",
        "--noinput",
        "--username",
        "ops",
        "--email",
        "ops@localhost",
        DJANGO_SUPERUSER_PASSWORD=password,
    )
    return "ops", password


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # An explicit driver path: selenium never looks for (or downloads) one itself.
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the live part was swapped under our feet: look again
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"no {what} after {timeout}s (last error: {last!r})")


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def screenshot(driver: Any, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("SERVICEBUS_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target / f"dashboard-{name}.png"))


def test_dashboard_in_a_browser(
    stack: Stack, staff: tuple[str, str], browser: Any, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{stack.port}"
    # Anonymous: the login page, then back to the overview.
    browser.get(f"{base}/bus/")
    assert "/bus/login/" in browser.current_url
    css(browser, "#id_username")[0].send_keys(staff[0])
    css(browser, "#id_password")[0].send_keys(staff[1])
    css(browser, "form button[type=submit]")[-1].click()
    wait_until(lambda: browser.current_url == f"{base}/bus/", "redirect to the overview")

    # The three services and their instances appear (pushed over the WebSocket).
    browser.execute_script("window.notReloaded = true;")

    def services_with_instances() -> set[str]:
        return {
            article.get_attribute("data-service")
            for article in css(browser, "article.service")
            if article.find_elements("css selector", "tr.instance:not(.stale)")
        }

    wait_until(
        lambda: services_with_instances() >= {"inventory", "pricing", "orders"},
        "inventory, pricing and orders with live instances",
    )
    wait_until(lambda: css(browser, "#conn.live"), "a live WebSocket")
    first_update = browser.execute_script("return document.body.dataset.updated")
    wait_until(
        lambda: browser.execute_script("return document.body.dataset.updated") != first_update,
        "a second live update",
    )
    assert browser.execute_script("return window.notReloaded") is True  # no reload
    # Everything the page loaded came from the dashboard itself.
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(url.startswith(f"{base}/bus/") for url in resources), resources

    # An order through the HTTP API, then its trace by correlation ID (the search box).
    cid = f"e2e-dash-{uuid.uuid4().hex[:8]}"
    resp = stack.order([{"sku": "MUG-01", "qty": 1}], X_Request_ID=cid)
    assert resp.status == 201, resp.body
    search = css(browser, "#trace-id")[0]
    search.send_keys(cid)
    search.submit()
    wait_until(lambda: browser.current_url.endswith(f"/bus/traces/{cid}"), "the trace page")

    def saga_rows() -> dict[str, str]:
        rows = {
            row.get_attribute("data-call"): row.find_element("css selector", "td.duration").text
            for row in css(browser, "tr.call")
        }
        return rows if set(SAGA) <= set(rows) else {}

    rows = wait_until(saga_rows, "the four saga calls in the waterfall")
    for call in SAGA:
        assert rows[call].endswith(("ms", " s")), (call, rows[call])
    assert all(row.get_attribute("data-code") == "ok" for row in css(browser, "tr.call"))
    screenshot(browser, "trace", tmp_path)

    # A declined card: in the failures, linked to its own trace.
    declined = f"e2e-declined-{uuid.uuid4().hex[:8]}"
    resp = stack.order([{"sku": "MUG-01", "qty": 1}], card=CARD_DECLINED, X_Request_ID=declined)
    assert resp.status == 402, resp.body
    css(browser, "nav a[href$='/bus/failures']")[0].click()

    def declined_row() -> tuple[str, str] | None:
        # Read in one go: the live part may be swapped between two lookups.
        for row in css(browser, "tr.failure"):
            for link in row.find_elements("css selector", f"a[href$='/bus/traces/{declined}']"):
                return link.get_attribute("href"), row.get_attribute("data-code")
        return None

    href, code = wait_until(declined_row, "the declined order among the failures")
    assert code == "card_declined"
    browser.get(href)
    wait_until(
        lambda: css(browser, "tr.call[data-code='card_declined']"),
        "the failed charge in the declined order's trace",
    )

    # A service: its methods with the docs its worker gave (_info) and their figures.
    browser.get(f"{base}/bus/services/pricing")

    def charge_doc() -> str:
        docs = css(browser, "tr.method-doc[data-method='charge'] .doc")
        return docs[0].text if docs else ""

    assert "Charge a card once per order" in wait_until(charge_doc, "pricing.charge's doc")
    screenshot(browser, "service", tmp_path)

    # A few more orders, then the overview shows the traffic (the picture in the docs).
    for card in ["4242424242424242"] * 6 + [CARD_DECLINED]:
        stack.order([{"sku": "STK-01", "qty": 1}], card=card)
    browser.get(f"{base}/bus/")

    def inventory_busy() -> bool:
        value = css(browser, "article[data-service='inventory'] .figure .value")[0].text
        return value not in ("0", "")

    wait_until(inventory_busy, "calls/s of inventory on the overview")
    screenshot(browser, "overview", tmp_path)
