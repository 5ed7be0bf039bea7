"""Repository behaviour on real PostgreSQL: domain errors, idempotency across processes, atomicity."""

from __future__ import annotations

import multiprocessing as mp
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.errors import (
    DuplicateAccountName,
    DuplicateClientOrderId,
    InvalidLimits,
    InvalidOrderTransition,
    UnknownExchange,
)
from tradingbot.adapters.persistence.models import Account, Alert, Decision, Order, OrderEvent

from . import _workers

SYMBOL = "BTC/USDT:USDT"


def _account(engine: Engine, name: str = "main", exchange: str = "paper") -> int:
    with session_scope(engine) as s:
        account, _ = repo.create_account(s, name=name, exchange=exchange, testnet=True)
        return account.id


def _count(engine: Engine, model: type[object]) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_duplicate_client_order_id_is_a_domain_error_and_keeps_the_transaction_usable(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        repo.create_order(
            s, account_id=acct, client_order_id="tb-1", symbol=SYMBOL, side="buy", quantity=Decimal("0.01")
        )
        with pytest.raises(DuplicateClientOrderId, match="'tb-1' already exists"):
            repo.create_order(
                s, account_id=acct, client_order_id="tb-1", symbol=SYMBOL, side="sell", quantity=Decimal("0.02")
            )
        repo.create_order(
            s, account_id=acct, client_order_id="tb-2", symbol=SYMBOL, side="sell", quantity=Decimal("0.02")
        )
    with session_scope(db) as s:
        rows = s.execute(select(Order.client_order_id, Order.side).order_by(Order.id)).all()
    assert [tuple(r) for r in rows] == [("tb-1", "buy"), ("tb-2", "sell")]


def test_duplicate_client_order_id_across_transactions(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        repo.create_order(s, account_id=acct, client_order_id="tb-x", symbol=SYMBOL, side="buy", quantity=Decimal(1))
    with pytest.raises(DuplicateClientOrderId), session_scope(db) as s:
        repo.create_order(s, account_id=acct, client_order_id="tb-x", symbol=SYMBOL, side="buy", quantity=Decimal(1))
    assert _count(db, Order) == 1


def test_duplicate_account_name(db: Engine) -> None:
    _account(db, "alpha")
    with pytest.raises(DuplicateAccountName, match="'alpha' already exists"), session_scope(db) as s:
        repo.create_account(s, name="alpha", exchange="okx", testnet=False)
    assert _count(db, Account) == 1


def test_unknown_exchange_writes_nothing(db: Engine) -> None:
    with pytest.raises(UnknownExchange, match=r"'kraken'.*paper, binanceusdm, okx"), session_scope(db) as s:
        repo.create_account(s, name="k", exchange="kraken", testnet=True)
    assert _count(db, Account) == 0


def test_invalid_limits_are_refused(db: Engine) -> None:
    _account(db, "lim")
    with pytest.raises(InvalidLimits, match="leverage"), session_scope(db) as s:
        repo.set_limits(s, "lim", max_leverage=500)
    with session_scope(db) as s:
        repo.set_limits(s, "lim", max_leverage=10, max_position_usd=Decimal("2500.5"))
    with session_scope(db) as s:
        acct = repo.get_account(s, "lim")
        assert (acct.max_leverage, acct.max_position_usd, acct.max_open_positions) == (10, Decimal("2500.5"), 1)


def test_order_status_history_and_invalid_transition(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        repo.create_order(s, account_id=acct, client_order_id="tb-h", symbol=SYMBOL, side="buy", quantity=Decimal(1))
    with session_scope(db) as s:
        repo.transition_order(s, "tb-h", "submitted", exchange_order_id="ex-77")
        repo.transition_order(s, "tb-h", "partially_filled")
        repo.transition_order(s, "tb-h", "filled")
    with pytest.raises(InvalidOrderTransition, match="'filled' to 'canceled'"), session_scope(db) as s:
        repo.transition_order(s, "tb-h", "canceled")
    with session_scope(db) as s:
        order = s.scalars(select(Order).where(Order.client_order_id == "tb-h")).one()
        history = [(e.from_status, e.to_status) for e in order.events]
    assert order.status == "filled" and order.exchange_order_id == "ex-77"
    assert history == [
        (None, "pending"),
        ("pending", "submitted"),
        ("submitted", "partially_filled"),
        ("partially_filled", "filled"),
    ]


def test_fills_are_recorded_once(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        order = repo.create_order(
            s, account_id=acct, client_order_id="tb-f", symbol=SYMBOL, side="buy", quantity=Decimal(2)
        )
        first = repo.record_fill(s, order_id=order.id, exchange_fill_id="t1", price=Decimal(100), quantity=Decimal(1))
        again = repo.record_fill(s, order_id=order.id, exchange_fill_id="t1", price=Decimal(100), quantity=Decimal(1))
    assert (first, again) == (True, False)


def test_recent_orders_newest_first_and_bounded(db: Engine) -> None:
    acct = _account(db)
    other = _account(db, "other")
    with session_scope(db) as s:
        for i in range(25):
            repo.create_order(
                s, account_id=acct, client_order_id=f"a-{i}", symbol=SYMBOL, side="buy", quantity=Decimal(1)
            )
            repo.create_order(
                s, account_id=other, client_order_id=f"b-{i}", symbol=SYMBOL, side="buy", quantity=Decimal(1)
            )
    with session_scope(db) as s:
        recent = repo.recent_orders(s, acct, limit=10)
    assert [o.client_order_id for o in recent] == [f"a-{i}" for i in range(24, 14, -1)]


def test_decision_replay_updates_its_row(db: Engine) -> None:
    acct = _account(db)
    with session_scope(db) as s:
        repo.record_decision(s, execution_name="exec-1", account_id=acct, symbol=SYMBOL, inputs={"a": 1})
    with session_scope(db) as s:
        d = repo.record_decision(
            s,
            execution_name="exec-1",
            account_id=acct,
            symbol=SYMBOL,
            inputs={"a": 1},
            stages={"predict": {"p_up": 0.61}, "validate": {"ok": False}},
            final_action="rejected",
            rejection_reason="max open positions reached",
        )
        assert d.finished_at is not None
    with session_scope(db) as s:
        rows = s.scalars(select(Decision)).all()
    assert len(rows) == 1
    assert rows[0].stages["predict"]["p_up"] == 0.61
    assert rows[0].rejection_reason == "max open positions reached"


def test_two_processes_recording_the_same_alert_leave_one_row(db: Engine, servers: Servers) -> None:
    ctx = mp.get_context("spawn")
    keys = [f"alert-{i}" for i in range(5)]
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_workers.record_same_alerts, args=(servers.database_url, keys, barrier, 0.05, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60)[1] for _ in procs]
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    # per key: exactly one process created the row, the other was told it already existed
    for i in range(len(keys)):
        assert sorted([results[0][i], results[1][i]]) == [False, True]
    with session_scope(db) as s:
        counts = dict(s.execute(select(Alert.idempotency_key, func.count()).group_by(Alert.idempotency_key)).all())
    assert counts == dict.fromkeys(keys, 1)


def test_crash_mid_transaction_keeps_nothing(db: Engine, servers: Servers) -> None:
    acct = _account(db)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_workers.crash_mid_transaction, args=(servers.database_url, acct, "crash-1", ready))
    child.start()
    child.join(timeout=60)
    assert ready.is_set(), "the child died before writing anything; the test proves nothing"
    assert child.exitcode == -9
    assert (_count(db, Alert), _count(db, Decision), _count(db, Order), _count(db, OrderEvent)) == (0, 0, 0, 0)
    # the key is free again: the crashed transaction left no row and no lock behind
    with session_scope(db) as s:
        assert repo.record_alert(s, idempotency_key="crash-1", raw_body="{}", source_ip=None, account_id=acct).created


def test_exception_mid_transaction_rolls_everything_back(db: Engine) -> None:
    acct = _account(db)
    with pytest.raises(RuntimeError, match="exchange timeout"), session_scope(db) as s:
        alert = repo.record_alert(s, idempotency_key="e-1", raw_body="{}", source_ip="::1", account_id=acct)
        repo.record_decision(s, execution_name="e-1", account_id=acct, symbol=SYMBOL, inputs={}, alert_id=alert.id)
        repo.create_order(s, account_id=acct, client_order_id="e-1-o", symbol=SYMBOL, side="buy", quantity=Decimal(1))
        s.flush()
        raise RuntimeError("exchange timeout")
    assert (_count(db, Alert), _count(db, Decision), _count(db, Order)) == (0, 0, 0)


def test_alerts_by_status(db: Engine) -> None:
    with session_scope(db) as s:
        a = repo.record_alert(s, idempotency_key="s-1", raw_body="x", source_ip="198.51.100.1", account_id=None)
        repo.record_alert(s, idempotency_key="s-2", raw_body="y", source_ip=None, account_id=None)
        repo.set_alert_status(s, a.id, "rejected", "unknown token")
    with session_scope(db) as s:
        rejected = repo.alerts_by_status(s, "rejected")
        assert [(r.idempotency_key, r.reason, str(r.source_ip)) for r in rejected] == [
            ("s-1", "unknown token", "198.51.100.1")
        ]
