"""The dashboard page in a real browser: Debian's headless Chromium (``/usr/bin/chromium``, installed
by .ci/run) driven by Playwright, against the local server `serve` runs, with real PostgreSQL and
Redis. It loads, shows a position this test opened, and the kill switch works; screenshots go to
the test's tmp folder."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.domain.positions import TradeIntent
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.routes import local_routes
from tradingbot.pipeline.execute import _factory
from tradingbot.pipeline.order_service import execute_intent
from tradingbot.pipeline.runtime import Runtime

CHROMIUM = Path("/usr/bin/chromium")
BTC = "BTC/USDT:USDT"
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' brings playwright")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)",
)


@pytest.fixture
def site(runtime: Runtime, cache: Cache) -> Iterator[dict[str, Any]]:
    with session_scope(runtime.engine()) as s:
        acc, _ = repo.create_account(s, name="screen", exchange="paper", testnet=True)
        repo.set_limits(s, "screen", max_leverage=10, max_position_usd=Decimal(100000))
        op = ops.create_operator(s, name="erin")
        ops.assign_account(s, operator_id=op.id, account_id=acc.id)
        token = ops.issue_token(s, operator_id=op.id, ttl=dt.timedelta(hours=1))
        account_id = acc.id
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    sessions, exchanges = _factory(runtime)
    intent = TradeIntent(decision_id="dash-1", symbol="BTCUSDT", action="long", reference_price=Decimal(50000),
                         quantity=Decimal("0.25"), leverage=2, stop_loss=Decimal(47000))  # fmt: skip
    assert execute_intent(sessions, cache, account_id, intent, exchanges).status == "filled"
    cache.put_price("binanceusdm", BTC, Decimal(50500))
    server = make_server("127.0.0.1", 0, local_routes(webhook_handler))
    serve_in_thread(server)
    try:
        yield {"base": f"http://127.0.0.1:{server.server_address[1]}", "token": token, "account_id": account_id}
    finally:
        server.shutdown()


def test_dashboard_shows_the_position_and_the_kill_switch_works(
    site: dict[str, Any], cache: Cache, tmp_path: Path
) -> None:
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{site['base']}/dashboard#token={site['token']}")
            row = page.locator("#positions tbody tr").first
            playwright_api.expect(row).to_contain_text("BTCUSDT", timeout=15_000)
            cells = row.locator("td").all_inner_texts()
            assert cells[:3] == ["BTCUSDT", "long", "0.25"]
            assert cells[4] == "50500.00" and cells[6] == "47000.00"  # mark from the feed's key; the stop
            assert page.locator("#who").inner_text() == "operator erin"
            assert "#token" not in page.url  # the token left the address bar
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            page.get_by_role("button", name="Engage kill switch").click()
            playwright_api.expect(page.locator("#switch-state")).to_have_text(
                "ENGAGED: dashboard (erin via api)", timeout=10_000
            )
            assert cache.kill_switch(site["account_id"]) == "dashboard (erin via api)"
            page.screenshot(path=str(tmp_path / "dashboard-killed.png"), full_page=True)
            page.get_by_role("button", name="Release kill switch").click()
            playwright_api.expect(page.locator("#switch-state")).to_have_text(
                "released: orders allowed", timeout=10_000
            )
            assert cache.kill_switch(site["account_id"]) is None
            assert errors == []
        finally:
            browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    print(f"\nscreenshots: {tmp_path}")


def test_dashboard_with_a_bad_token_says_why(site: dict[str, Any], tmp_path: Path) -> None:
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"{site['base']}/dashboard#token=tbop_wrong")
            playwright_api.expect(page.locator("#error")).to_have_text("401: token unknown", timeout=10_000)
            page.screenshot(path=str(tmp_path / "dashboard-refused.png"))
        finally:
            browser.close()
