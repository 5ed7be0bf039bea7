"""Repository functions moved out of the services (issue 13): positions sync, executions, decisions'
traces, order lookups, the paper venue's state, account queries. Real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, select

from tradingbot.adapters.crypto import EnvelopeCipher, ExchangeCredentials, Kek, KeyRing, Secret
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import PaperOrder
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.domain.exchange import Position

SYMBOL = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def _account(engine: Engine, name: str = "main") -> int:
    with session_scope(engine) as s:
        account, _ = repo.create_account(s, name=name, exchange="paper", testnet=True)
        return account.id


def _live(symbol: str, side: str, qty: str, entry: str = "100") -> Position:
    return Position(symbol, side, Decimal(qty), Decimal(entry), 3, Decimal(0))  # type: ignore[arg-type]


def test_sync_positions_opens_resizes_and_closes_on_a_side_change(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        assert repo.sync_positions(s, acct, [_live(SYMBOL, "long", "1"), _live(ETH, "short", "2")]) == [
            f"opened {SYMBOL} long",
            f"opened {ETH} short",
        ]
    with session_scope(db) as s:
        changes = repo.sync_positions(s, acct, [_live(SYMBOL, "long", "1.5"), _live(ETH, "long", "2")])
    assert changes == [f"resized {SYMBOL} to 1.5", f"closed {ETH} short", f"opened {ETH} long"]
    with session_scope(db) as s:
        # only the symbols asked for are touched: BTC stays open although the venue list omits it
        assert repo.sync_positions(s, acct, [], symbols=[ETH]) == [f"closed {ETH} long"]
        open_rows = {(p.symbol, p.side, p.quantity) for p in repo.open_positions(s, acct)}
        assert open_rows == {(SYMBOL, "long", Decimal("1.5"))}
        assert [p.symbol for p in repo.open_positions(s, acct, symbols=[ETH], lock=True)] == []
        history = s.scalars(select(StoredPosition).order_by(StoredPosition.id)).all()
    assert [(p.symbol, p.side, p.closed_at is not None) for p in history] == [
        (SYMBOL, "long", False),
        (ETH, "short", True),
        (ETH, "long", True),
    ]


def test_position_matches_compares_side_and_size_only(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        repo.sync_positions(s, acct, [_live(SYMBOL, "long", "1", entry="100")])
        (row,) = repo.open_positions(s, acct)
        assert repo.position_matches(row, _live(SYMBOL, "long", "1", entry="105"))
        assert not repo.position_matches(row, _live(SYMBOL, "long", "2"))
        assert not repo.position_matches(row, _live(SYMBOL, "short", "1"))
        assert not repo.position_matches(row, None) and not repo.position_matches(None, _live(SYMBOL, "long", "1"))
        assert repo.position_matches(None, None)


def test_execution_is_stored_once_per_decision_and_overwritten(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        assert repo.find_execution(s, acct, "tv-1") is None
        repo.store_execution(s, account_id=acct, decision_key="tv-1", symbol=SYMBOL, action="long",
                             status="pending", reason="open: order not filled yet", report={"n": 1})  # fmt: skip
    with session_scope(db) as s:
        repo.store_execution(s, account_id=acct, decision_key="tv-1", symbol="X" * 40, action="long" * 5,
                             status="filled", reason=None, report={"n": 2})  # fmt: skip
    with session_scope(db) as s:
        row = repo.find_execution(s, acct, "tv-1")
        assert row is not None
        assert (row.status, row.reason, row.report, row.symbol, row.action) == (
            "filled", None, {"n": 2}, "X" * 32, ("long" * 5)[:16]
        )  # fmt: skip
        assert row.updated_at >= row.created_at


def test_execution_trace_is_merged_into_the_stages(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        repo.record_decision(s, execution_name="exec-1", account_id=acct, symbol=SYMBOL, inputs={},
                             stages={"predict": {"p_up": 0.6}})  # fmt: skip
        repo.record_decision(s, execution_name="exec-2", account_id=acct, symbol=SYMBOL, inputs={})
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with session_scope(db) as s:
        repo.attach_execution_trace(s, "exec-1", {"status": "SUCCEEDED", "started": when, "states": []})
        repo.attach_execution_trace(s, "no-such-execution", {"status": "FAILED"})  # nothing to attach to
    with session_scope(db) as s:
        d = repo.find_decision(s, "exec-1")
        assert d is not None
        assert d.stages == {"predict": {"p_up": 0.6},
                            "_execution": {"status": "SUCCEEDED", "started": str(when), "states": []}}  # fmt: skip
        assert repo.find_decision(s, str(d.id)) is d
        assert repo.find_decision(s, "nope") is None and repo.find_decision(s, "999999") is None
        assert [x.execution_name for x in repo.recent_decisions(s, limit=1)] == ["exec-2"]
        assert [x.execution_name for x in repo.recent_decisions(s)] == ["exec-2", "exec-1"]


def test_order_lookups(db: Engine) -> None:
    acct = _account(db)
    other = _account(db, "other")
    with session_scope(db) as s:
        order = repo.create_order(s, account_id=acct, client_order_id="tb-1", symbol=SYMBOL, side="buy",
                                  quantity=Decimal(2))  # fmt: skip
        repo.create_order(s, account_id=acct, client_order_id="tb-2", symbol=ETH, side="sell", quantity=Decimal(1),
                          type="stop_market", price=Decimal(90))  # fmt: skip
        repo.create_order(s, account_id=other, client_order_id="tb-3", symbol=SYMBOL, side="buy", quantity=Decimal(1))
        repo.transition_order(s, "tb-2", "submitted")
        assert repo.filled_quantity(s, order.id) == 0 and repo.order_fills(s, order.id) == []
        repo.record_fill(s, order_id=order.id, exchange_fill_id="f1", price=Decimal(100), quantity=Decimal("0.5"))
        repo.record_fill(s, order_id=order.id, exchange_fill_id="f2", price=Decimal(102), quantity=Decimal("1"))
    with session_scope(db) as s:
        assert repo.order_status(s, "tb-1") == "pending"
        assert repo.order_status(s, "tb-2", lock=True) == "submitted"
        assert repo.order_status(s, "missing") is None
        found = repo.order_by_client_id(s, "tb-1")
        assert found is not None and found.id == order.id and repo.order_by_client_id(s, "missing") is None
        assert sorted(o.client_order_id for o in repo.orders_by_client_ids(s, ["tb-1", "tb-3", "missing"])) == [
            "tb-1",
            "tb-3",
        ]
        assert repo.filled_quantity(s, order.id) == Decimal("1.5")
        assert sorted(repo.order_fills(s, order.id)) == [(Decimal("0.5"), Decimal(100)), (Decimal(1), Decimal(102))]
        live = repo.orders_in_status(s, acct, ("pending", "submitted"))
        assert [(r.client_order_id, r.symbol, r.type, r.status) for r in live] == [
            ("tb-1", SYMBOL, "market", "pending"),
            ("tb-2", ETH, "stop_market", "submitted"),
        ]
        assert all(r.created_at.tzinfo is not None for r in live)
        assert repo.orders_in_status(s, acct, ("filled",)) == []


def test_account_queries(db: Engine) -> None:
    acct = _account(db, "b-main")
    _account(db, "a-side")
    off = _account(db, "c-off")
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    with session_scope(db) as s:
        row = repo.account_by_id(s, off)
        assert row is not None and row.name == "c-off"
        row.enabled = False
        assert repo.account_by_id(s, 999_999) is None
        main = repo.find_account(s, "b-main")
        assert main is not None and main.id == acct and repo.find_account(s, "nobody") is None
        repo.store_credentials(s, main, ExchangeCredentials(Secret("AKIA1234567890WXYZ"), Secret("s3cr3t")), cipher)
    with session_scope(db) as s:
        assert [(r.name, r.id) for r in repo.account_refs(s)] == [("a-side", acct + 1), ("b-main", acct)]
        assert repo.account_refs(s, "c-off") == [repo.AccountRef(off, "c-off")]  # named: even when disabled
        assert repo.account_refs(s, "nobody") == []
        hints = repo.credential_hints(s)
    assert list(hints) == [acct] and hints[acct].endswith("WXYZ") and "AKIA" not in hints[acct]


def test_paper_state(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        wallet = repo.lock_paper_wallet(s, acct, Decimal(10_000))
        wallet.balance -= Decimal(5)
    with session_scope(db) as s:
        assert repo.lock_paper_wallet(s, acct, Decimal(1)).balance == Decimal(9_995)  # created once
        assert repo.paper_leverage(s, acct, SYMBOL) == 1
        repo.set_paper_symbol_setting(s, acct, SYMBOL, leverage=5)
        repo.set_paper_symbol_setting(s, acct, SYMBOL, margin_mode="cross")
        repo.set_paper_symbol_setting(s, acct, SYMBOL)  # nothing to change
    with session_scope(db) as s:
        assert repo.paper_leverage(s, acct, SYMBOL) == 5
        repo.upsert_paper_position(s, acct, SYMBOL, side="long", quantity=Decimal(1), entry_price=Decimal(100),
                                   leverage=5)  # fmt: skip
        repo.upsert_paper_position(s, acct, ETH, side="long", quantity=Decimal(0), entry_price=Decimal(0), leverage=1)
        repo.upsert_paper_position(s, acct, SYMBOL, side="short", quantity=Decimal(2), entry_price=Decimal(99),
                                   leverage=5)  # fmt: skip
    with session_scope(db) as s:
        assert [(p.symbol, p.side, p.quantity) for p in repo.paper_positions(s, acct)] == [
            (SYMBOL, "short", Decimal(2))
        ]  # the flat ETH row is kept but not listed
        pos = repo.paper_position(s, acct, ETH, lock=True)
        assert pos is not None and pos.quantity == 0 and repo.paper_position(s, acct, "XRP/USDT:USDT") is None
        for cid, status in (("p-1", "open"), ("p-2", "filled"), ("p-3", "open")):
            added = repo.add_paper_order(s, PaperOrder(account_id=acct, client_order_id=cid, symbol=SYMBOL,
                                                       side="buy", type="limit", quantity=Decimal(1),
                                                       price=Decimal(90), status=status))  # fmt: skip
            assert added.id is not None
    with session_scope(db) as s:
        assert [o.client_order_id for o in repo.resting_paper_orders(s, acct)] == ["p-1", "p-3"]
        found = repo.paper_order(s, acct, "p-2", lock=True)
        assert found is not None and found.status == "filled"
        assert repo.paper_order(s, acct + 1, "p-2") is None
