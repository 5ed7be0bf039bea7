"""The dashboard page in a real browser: Debian's headless Chromium (``/usr/bin/chromium``, installed
by .ci/run) driven by Playwright, against the local server `serve` runs, with real PostgreSQL and
Redis. It loads, shows a position this test opened, and the kill switch works; screenshots go to
the test's tmp folder."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _browser_page() -> Iterator[tuple[Any, list[str]]]:
    """A page in headless Chromium and the JavaScript errors it raised."""
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            browser.close()


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
    with _browser_page() as (page, errors):
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
        playwright_api.expect(page.locator("#switch-state")).to_have_text("released: orders allowed", timeout=10_000)
        assert cache.kill_switch(site["account_id"]) is None
        assert errors == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    print(f"\nscreenshots: {tmp_path}")


def test_dashboard_with_a_bad_token_says_why(site: dict[str, Any], tmp_path: Path) -> None:
    with _browser_page() as (page, _):
        page.goto(f"{site['base']}/dashboard#token=tbop_wrong")
        playwright_api.expect(page.locator("#error")).to_have_text("401: token unknown", timeout=10_000)
        page.screenshot(path=str(tmp_path / "dashboard-refused.png"))


def test_dashboard_signs_in_with_cognito_pkce_and_calls_the_api_with_the_id_token(
    site: dict[str, Any], runtime: Runtime, tmp_path: Path
) -> None:
    """On AWS the page signs in at the operator pool's managed login (a stand-in that follows
    Cognito's documented rules: _cognito_server.py), redeems the code with its PKCE verifier and
    sends the ID token to /api. API Gateway's user-pool authorizer is not here: the test stands in
    for it, checking each /api request carries the issued ID token before passing it on as the
    operator's local token."""
    import requests

    from ._cognito_server import Pool, serve

    port = site["base"].rsplit(":", 1)[1]
    page_url = f"http://localhost:{port}/dashboard"  # Cognito allows plain HTTP for localhost only
    pool = Pool(client_id="dashclient123", callback_urls=[page_url], users={"erin": "Correct-Horse-9!"})
    server = serve(pool)
    runtime.settings = runtime.settings.model_copy(
        update={"operator_login_url": pool.url, "operator_login_client_id": pool.client_id}
    )
    seen: list[str | None] = []

    def authorizer(route: Any) -> None:
        request = route.request
        seen.append(request.headers.get("authorization"))
        issued = [t["id_token"] for t in pool.tokens]
        if not issued or request.headers.get("authorization") != f"Bearer {issued[-1]}":
            route.fulfill(status=401, content_type="application/json", body='{"message": "Unauthorized"}')
            return
        route.continue_(headers={**request.headers, "authorization": f"Bearer {site['token']}"})

    try:
        with _browser_page() as (page, errors):
            page.route("**/api/**", authorizer)
            page.goto(page_url)
            playwright_api.expect(page.locator("#signin")).to_be_visible(timeout=10_000)
            assert page.locator("#login").is_hidden()  # no token box on AWS
            page.locator("#signin").click()
            page.wait_for_url(f"{pool.url}/login?*", timeout=10_000)
            page.fill("#username", "erin")
            page.fill("#password", "Correct-Horse-9!")
            page.click("#submit")
            row = page.locator("#positions tbody tr").first
            playwright_api.expect(row).to_contain_text("BTCUSDT", timeout=15_000)
            assert page.locator("#who").inner_text() == "operator erin"
            assert page.url == page_url  # the code and state left the address bar
            page.screenshot(path=str(tmp_path / "dashboard-cognito.png"), full_page=True)
            assert errors == []
    finally:
        server.shutdown()
    [query] = pool.authorize_queries
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == page_url and query["client_id"] == "dashclient123"
    assert len(query["code_challenge"]) == 43 and query["state"]
    assert len(pool.tokens) == 1 and pool.refusals == []
    assert seen and all(h == f"Bearer {pool.tokens[0]['id_token']}" for h in seen)
    # the code was redeemed once: Cognito refuses it a second time
    [code] = list(pool.issued)
    server = serve(pool)
    try:
        again = requests.post(f"{pool.url}/oauth2/token", timeout=5, data={
            "grant_type": "authorization_code", "client_id": pool.client_id, "code": code,
            "redirect_uri": page_url, "code_verifier": "x" * 43})  # fmt: skip
    finally:
        server.shutdown()
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}


def test_dashboard_config_says_how_to_sign_in(site: dict[str, Any], runtime: Runtime) -> None:
    import requests

    local = requests.get(f"{site['base']}/dashboard/config.json", timeout=10)
    assert local.status_code == 200 and local.json() == {"auth": "token"}
    page = requests.get(f"{site['base']}/dashboard", timeout=10)
    assert "connect-src 'self';" in page.headers["Content-Security-Policy"]
    runtime.settings = runtime.settings.model_copy(update={
        "operator_login_url": "https://ops-demo.auth.eu-west-1.amazoncognito.com/",
        "operator_login_client_id": "abc123"})  # fmt: skip
    aws = requests.get(f"{site['base']}/dashboard/config.json", timeout=10).json()
    assert aws == {"auth": "cognito", "login_url": "https://ops-demo.auth.eu-west-1.amazoncognito.com",
                   "client_id": "abc123", "scope": "openid email"}  # fmt: skip
    csp = requests.get(f"{site['base']}/dashboard", timeout=10).headers["Content-Security-Policy"]
    assert "connect-src 'self' https://ops-demo.auth.eu-west-1.amazoncognito.com;" in csp
