"""The operator API over the real local server (the same routes `tradingbot serve` mounts) on the
real PostgreSQL and Redis: identities, ownership, pages, PnL from fills, the kill switch, closing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import OperatorAudit, OperatorToken, Order, PaperWallet, Position
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.domain.positions import TradeIntent
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.routes import local_routes
from tradingbot.pipeline.execute import _factory
from tradingbot.pipeline.order_service import execute_intent
from tradingbot.pipeline.runtime import Runtime

BTC = "BTC/USDT:USDT"


class Desk:
    """Two operators, each owning one paper account, and a server on 127.0.0.1."""

    def __init__(self, rt: Runtime, base: str) -> None:
        self.rt, self.base = rt, base
        with session_scope(rt.engine()) as s:
            self.alice_acc, _ = repo.create_account(s, name="alice-paper", exchange="paper", testnet=True)
            self.bob_acc, _ = repo.create_account(s, name="bob-paper", exchange="paper", testnet=True)
            repo.set_limits(s, "alice-paper", max_leverage=10, max_position_usd=Decimal(100000))
            alice = ops.create_operator(s, name="alice")
            bob = ops.create_operator(s, name="bob")
            ops.assign_account(s, operator_id=alice.id, account_id=self.alice_acc.id)
            ops.assign_account(s, operator_id=bob.id, account_id=self.bob_acc.id)
            self.alice_token = ops.issue_token(s, operator_id=alice.id, ttl=dt.timedelta(days=1))
            self.bob_token = ops.issue_token(s, operator_id=bob.id, ttl=dt.timedelta(days=1))
            self.alice_id = alice.id

    def get(self, path: str, token: str | None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.base + path, headers=headers, params=params, timeout=30)

    def send(self, method: str, path: str, token: str | None, json: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.base + path, headers=headers, json=json, timeout=60)

    def open_long(self, cache: Cache, qty: str = "0.1", price: int = 50000) -> dict[str, Any]:
        cache.put_price("binanceusdm", BTC, Decimal(price))
        sessions, exchanges = _factory(self.rt)
        intent = TradeIntent(decision_id=f"t-{dt.datetime.now().timestamp()}", symbol="BTCUSDT", action="long",
                             reference_price=Decimal(price), quantity=Decimal(qty), leverage=2)  # fmt: skip
        report = execute_intent(sessions, cache, self.alice_acc.id, intent, exchanges).to_dict()
        assert report["status"] == "filled", report
        return report


@pytest.fixture
def desk(runtime: Runtime, cache: Cache) -> Iterator[Desk]:
    server = make_server("127.0.0.1", 0, local_routes(webhook_handler))
    serve_in_thread(server)
    try:
        yield Desk(runtime, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()


def _audit(rt: Runtime) -> list[tuple[str | None, str, str, str | None]]:
    with session_scope(rt.engine()) as s:
        rows = s.scalars(select(OperatorAudit).order_by(OperatorAudit.id)).all()
        return [(str(r.operator_id) if r.operator_id else None, r.command, r.outcome, r.reason) for r in rows]


def test_requests_without_a_valid_token_are_refused_and_audited(desk: Desk) -> None:
    missing = desk.get("/api/accounts", None)
    assert missing.status_code == 401 and "missing bearer token" in missing.json()["message"]
    forged = desk.get("/api/accounts", "tbop_not-a-token")
    assert forged.status_code == 401 and forged.json()["message"] == "token unknown"
    with session_scope(desk.rt.engine()) as s:  # the token's clock ran out
        s.execute(update(OperatorToken).where(OperatorToken.operator_id == desk.alice_id)
                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))  # fmt: skip
    expired = desk.get("/api/accounts", desk.alice_token)
    assert expired.status_code == 401 and expired.json()["message"] == "token expired"
    reasons = [r[3] for r in _audit(desk.rt) if r[2] == "refused"]
    assert reasons == ["missing bearer token (Authorization: Bearer tbop_...)", "token unknown", "token expired"]


def test_an_operator_sees_only_its_own_accounts(desk: Desk) -> None:
    alice = desk.get("/api/accounts", desk.alice_token).json()["items"]
    bob = desk.get("/api/accounts", desk.bob_token).json()["items"]
    assert [a["name"] for a in alice] == ["alice-paper"]
    assert [a["name"] for a in bob] == ["bob-paper"]
    assert alice[0]["kill_switch"] == {"engaged": False, "reason": None}


def test_one_operator_cannot_read_or_close_anothers_positions(desk: Desk, cache: Cache) -> None:
    desk.open_long(cache)
    cache.put_price("binanceusdm", BTC, Decimal(51000))
    mine = desk.get("/api/accounts/alice-paper/positions", desk.alice_token)
    assert mine.status_code == 200, mine.text
    [pos] = mine.json()["items"]
    with session_scope(desk.rt.engine()) as s:
        stored = s.scalars(select(Position).where(Position.closed_at.is_(None))).one()
        entry, qty = Decimal(stored.entry_price), Decimal(stored.quantity)
    assert (pos["ticker"], pos["side"], Decimal(pos["quantity"])) == ("BTCUSDT", "long", qty)
    assert Decimal(pos["mark_price"]) == 51000
    assert Decimal(pos["unrealized_pnl"]) == (Decimal(51000) - entry) * qty  # entry includes the paper slippage
    assert pos["price_age_ms"] is not None and pos["price_age_ms"] < 15_000

    theirs = desk.get("/api/accounts/alice-paper/positions", desk.bob_token)
    assert theirs.status_code == 404
    assert theirs.json()["message"] == "account: no account 'alice-paper' owned by operator 'bob'"
    close = desk.send("POST", "/api/accounts/alice-paper/positions/BTCUSDT/close", desk.bob_token)
    assert close.status_code == 404
    switch = desk.send("POST", "/api/accounts/alice-paper/kill-switch", desk.bob_token, {"reason": "x"})
    assert switch.status_code == 404
    assert cache.kill_switch(desk.alice_acc.id) is None  # nothing changed
    with session_scope(desk.rt.engine()) as s:
        assert s.scalars(select(Position).where(Position.closed_at.is_(None))).one().id == stored.id
    refused = [(cmd, reason) for _, cmd, outcome, reason in _audit(desk.rt) if outcome == "refused"]
    assert [cmd for cmd, _ in refused] == ["positions", "close", "kill"]
    # a missing account reads exactly like another operator's
    nobody = desk.get("/api/accounts/no-such/positions", desk.bob_token)
    assert nobody.status_code == 404 and nobody.json()["message"].startswith("account: no account 'no-such'")


def test_close_flattens_the_position_and_pnl_comes_from_the_fills(desk: Desk, cache: Cache) -> None:
    desk.open_long(cache)
    cache.put_price("binanceusdm", BTC, Decimal(52000))
    unknown = desk.send("POST", "/api/accounts/alice-paper/positions/ETHUSDT/close", desk.alice_token)
    assert unknown.status_code == 422
    assert unknown.json()["message"] == "symbol: no open position in 'ETHUSDT' on account 'alice-paper'"
    done = desk.send("POST", "/api/accounts/alice-paper/positions/BTCUSDT/close", desk.alice_token)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "filled"
    assert desk.get("/api/accounts/alice-paper/positions", desk.alice_token).json()["items"] == []

    fills = desk.get("/api/accounts/alice-paper/fills", desk.alice_token).json()["items"]
    assert [f["side"] for f in fills] == ["sell", "buy"]  # newest first
    sell, buy = fills
    expected = (Decimal(sell["price"]) - Decimal(buy["price"])) * Decimal(buy["quantity"])
    fees = Decimal(sell["fee"]) + Decimal(buy["fee"])
    today = desk.get("/api/accounts/alice-paper/pnl/daily", desk.alice_token, days=1).json()["days"][0]
    assert (Decimal(today["realized_pnl"]), Decimal(today["fees"]), today["fills"]) == (expected, fees, 2)
    # the paper venue's own wallet agrees with the PnL replayed from its fill records
    eq = desk.get("/api/accounts/alice-paper/equity", desk.alice_token).json()
    with session_scope(desk.rt.engine()) as s:
        wallet = Decimal(s.scalar(select(PaperWallet.balance).where(PaperWallet.account_id == desk.alice_acc.id)) or 0)
    assert Decimal(eq["points"][-1]["equity"]) == wallet
    assert Decimal(eq["start"]) == wallet - (expected - fees)
    audit = [r for r in _audit(desk.rt) if r[1] == "close"]
    assert [(o, reason) for _, _, o, reason in audit] == [
        ("refused", "symbol: no open position in 'ETHUSDT' on account 'alice-paper'"), ("ok", None)
    ]  # fmt: skip


def test_decisions_page_with_a_cursor_and_every_rule(desk: Desk) -> None:
    rules = [{"rule": "kill_switch", "verdict": "pass", "reason": "not engaged"},
             {"rule": "min_win_rate", "verdict": "fail", "reason": "40 % <= 55 %"}]  # fmt: skip
    with session_scope(desk.rt.engine()) as s:
        for i in range(7):
            repo.record_decision(s, execution_name=f"e{i}", account_id=desk.alice_acc.id, symbol="BTCUSDT",
                                 inputs={"alert": {"strategy": "bollinger", "action": "long", "price": 1}},
                                 stages={"validation": {"rules": rules}}, final_action="rejected",
                                 rejection_reason="min_win_rate: 40 % <= 55 %")  # fmt: skip
        repo.record_decision(s, execution_name="bob-1", account_id=desk.bob_acc.id, symbol="BTCUSDT", inputs={})
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = desk.get("/api/accounts/alice-paper/decisions", desk.alice_token, limit=3,
                        **({"cursor": cursor} if cursor else {})).json()  # fmt: skip
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 7 and seen == sorted(seen, reverse=True)
    first = desk.get("/api/accounts/alice-paper/decisions", desk.alice_token, limit=1).json()["items"][0]
    assert first["rejecting_rule"] == "min_win_rate" and first["outcome"] == "rejected"
    assert [r["verdict"] for r in first["rules"]] == ["pass", "fail"]
    forged = desk.get("/api/accounts/alice-paper/decisions", desk.alice_token, cursor="bm90LWEtY3Vyc29y")
    assert forged.status_code == 422 and forged.json()["message"].startswith("cursor:")
    too_many = desk.get("/api/accounts/alice-paper/decisions", desk.alice_token, limit=100000)
    assert too_many.status_code == 422


def test_alert_pages_walk_only_the_accounts_rows_newest_first(desk: Desk) -> None:
    """The row-value keyset (account_id, id) < (account, cursor): interleaved with another account's
    alerts, the pages hold exactly this account's, newest first, each once."""
    mine: list[int] = []
    with session_scope(desk.rt.engine()) as s:
        for i in range(9):
            for acc in (desk.alice_acc.id, desk.bob_acc.id):
                row = repo.record_alert(s, idempotency_key=f"k-{acc}-{i}", raw_body="{}", source_ip="127.0.0.1",
                                        account_id=acc, status="accepted")  # fmt: skip
                if acc == desk.alice_acc.id:
                    mine.append(row.id)
    seen: list[int] = []
    cursor = None
    while True:
        page = desk.get("/api/accounts/alice-paper/alerts", desk.alice_token, limit=4,
                        **({"cursor": cursor} if cursor else {})).json()  # fmt: skip
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(mine, reverse=True)


def test_kill_switch_engage_and_release(desk: Desk, cache: Cache) -> None:
    on = desk.send("POST", "/api/accounts/alice-paper/kill-switch", desk.alice_token, {"reason": "lunch"})
    assert on.status_code == 200, on.text
    assert cache.kill_switch(desk.alice_acc.id) == "lunch (alice via api)"
    assert cache.kill_switch(desk.bob_acc.id) is None  # only her account
    off = desk.send("DELETE", "/api/accounts/alice-paper/kill-switch", desk.alice_token)
    assert off.json()["accounts"] == [{"account": "alice-paper", "engaged": False, "reason": None}]
    assert cache.kill_switch(desk.alice_acc.id) is None
    assert [r[1:3] for r in _audit(desk.rt)] == [("kill", "ok"), ("resume", "ok")]


def test_close_works_while_the_kill_switch_refuses_entries(desk: Desk, cache: Cache) -> None:
    """The switch halts risk-taking, not risk-reducing: with it engaged (durably: PostgreSQL and
    Redis) a new entry is refused at the order gate, and closing the position still goes through."""
    desk.open_long(cache)
    on = desk.send("POST", "/api/accounts/alice-paper/kill-switch", desk.alice_token, {"reason": "storm"})
    assert on.status_code == 200 and cache.kill_switch(desk.alice_acc.id) == "storm (alice via api)"
    sessions, exchanges = _factory(desk.rt)
    entry = TradeIntent(decision_id="t-entry-while-killed", symbol="ETHUSDT", action="long",
                        reference_price=Decimal(3000), quantity=Decimal("0.1"), leverage=2)  # fmt: skip
    cache.put_price("binanceusdm", "ETH/USDT:USDT", Decimal(3000))
    refused = execute_intent(sessions, cache, desk.alice_acc.id, entry, exchanges)
    assert refused.status == "rejected" and "kill switch engaged: storm" in (refused.reason or "")
    done = desk.send("POST", "/api/accounts/alice-paper/positions/BTCUSDT/close", desk.alice_token)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "filled", done.json()
    [leg] = done.json()["orders"]
    assert leg["side"] == "sell" and leg["status"] == "filled"
    with session_scope(desk.rt.engine()) as s:
        assert s.scalars(select(Position).where(Position.closed_at.is_(None))).all() == []
        [close_order] = s.scalars(select(Order).where(Order.side == "sell")).all()
        assert close_order.reduce_only is True
    assert cache.kill_switch(desk.alice_acc.id) == "storm (alice via api)"  # still engaged


def test_openapi_document_describes_the_routes_and_the_auth(desk: Desk) -> None:
    doc = requests.get(desk.base + "/api/docs", params={"format": "json"}, timeout=10).json()
    paths = doc["paths"]
    for path in ("/api/accounts", "/api/accounts/{account}/positions", "/api/accounts/{account}/decisions",
                 "/api/accounts/{account}/executions", "/api/accounts/{account}/pnl/daily",
                 "/api/accounts/{account}/equity", "/api/accounts/{account}/kill-switch", "/api/backtests",
                 "/api/optimisations", "/api/accounts/{account}/positions/{symbol}/close"):  # fmt: skip
        assert path in paths, path
    params = {p["name"] for p in paths["/api/accounts/{account}/decisions"]["get"]["parameters"]}
    assert {"cursor", "limit", "today"} <= params
    assert doc["components"]["securitySchemes"]["operatorToken"]["scheme"] == "bearer"
    # the webhook keeps its own routes on the same server
    assert requests.get(desk.base + "/health", timeout=10).status_code in (200, 503)
