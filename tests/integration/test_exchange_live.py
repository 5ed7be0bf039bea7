"""The Execute stage through the REAL ccxt clients (binanceusdm, okx) against local servers that
answer like the venues (tests/integration/_fake_exchanges.py), on real PostgreSQL and Redis.

Under every fault the server must have booked exactly one order per decision leg."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.crypto import EnvelopeCipher, ExchangeCredentials, Kek, KeyRing, Secret
from tradingbot.adapters.exchange.ccxt_adapter import CcxtExchange, local_urls
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Execution, Fill, Order, OrderEvent
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.domain.positions import TradeIntent, client_order_id
from tradingbot.pipeline.order_service import (
    ExecutionReport,
    RetryPolicy,
    default_exchange_factory,
    execute_intent,
    load_account,
)
from tradingbot.pipeline.reconcile import reconcile_account

from ._fake_exchanges import API_KEY, API_SECRET, PASSPHRASE, Book, Fault, binance_server, okx_server

TIMEOUT_MS = 400
FAST = RetryPolicy(max_attempts=6, base_delay_s=0.05, max_delay_s=0.2, max_retry_after_s=2.0)


@dataclass
class Venue:
    name: str
    book: Book
    url: str
    engine: Engine
    cache: Cache
    cipher: EnvelopeCipher
    account_id: int
    sleeps: list[float] = field(default_factory=list)

    def sessions(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def factory(self) -> Callable[..., Any]:
        return default_exchange_factory(
            self.sessions, self.cache, self.cipher, api_urls={self.name: local_urls(self.name, self.url)},  # type: ignore[arg-type]
            timeout_ms=TIMEOUT_MS,
        )  # fmt: skip

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        time.sleep(s)

    def execute(self, decision: str = "d-1", **kw: Any) -> ExecutionReport:
        # an explicit quantity unless a test sizes from the account's settings (quantity=None)
        fields: dict[str, Any] = {
            "symbol": "BTCUSDT", "action": "long", "reference_price": Decimal(50000), "quantity": Decimal("0.02"),
        }  # fmt: skip
        fields.update(kw)
        intent = TradeIntent(decision_id=decision, **fields)
        return execute_intent(self.sessions, self.cache, self.account_id, intent, self.factory(), policy=FAST,
                              sleep=self.sleep)  # fmt: skip

    def cid(self, decision: str = "d-1", leg: str = "open") -> str:
        return client_order_id(self.account_id, decision, leg)


def _make_account(engine: Engine, cipher: EnvelopeCipher, exchange: str, *, keys: bool = True) -> int:
    with session_scope(engine) as s:
        acct, _ = repo.create_account(
            s, name=f"acct-{exchange}-{keys}", exchange=exchange, testnet=True,
            limits=repo.RiskLimits(max_leverage=125, max_position_usd=Decimal(1000)),
        )  # fmt: skip
        if keys:
            creds = ExchangeCredentials(Secret(API_KEY), Secret(API_SECRET, visible=0), Secret(PASSPHRASE, visible=0))
            repo.store_credentials(s, acct, creds, cipher)
        return acct.id


@pytest.fixture(params=["binanceusdm", "okx"])
def venue(request: pytest.FixtureRequest, db: Engine, cache: Cache) -> Iterator[Venue]:
    name = request.param
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    server = binance_server() if name == "binanceusdm" else okx_server()
    with server:
        yield Venue(name, server.book, server.url, db, cache, cipher, _make_account(db, cipher, name))


def _orders(engine: Engine) -> dict[str, Order]:
    with session_scope(engine) as s:
        return {o.client_order_id: o for o in s.scalars(select(Order))}


def _execution(engine: Engine) -> Execution:
    with session_scope(engine) as s:
        return s.scalars(select(Execution)).one()


# ---------------------------------------------------------------- the happy path


def test_long_with_stop_and_target_places_three_orders_and_stores_them(venue: Venue) -> None:
    report = venue.execute(stop_loss=Decimal(49000), take_profit=Decimal(52000), leverage=5, quantity=None)

    assert report.status == "filled", report.to_dict()
    assert [(o.leg, o.status) for o in report.orders] == [("open", "filled"), ("sl", "open"), ("tp", "open")]
    # risk 1% of 10,000 over a 1,000 stop = 0.1 BTC, capped at the 1,000 USDT max position = 0.02 BTC
    assert report.orders[0].quantity == Decimal("0.02") and report.orders[0].filled == Decimal("0.02")
    assert venue.book.accepted == [venue.cid(), venue.cid(leg="sl"), venue.cid(leg="tp")]
    assert venue.book.orders[venue.cid(leg="sl")]["trigger"] == Decimal(49000)
    assert venue.book.orders[venue.cid(leg="sl")]["reduce_only"] is True
    assert venue.book.leverage["BTC"] == 5
    rows = _orders(venue.engine)
    assert {c: o.status for c, o in rows.items()} == {
        venue.cid(): "filled",
        venue.cid(leg="sl"): "open",
        venue.cid(leg="tp"): "open",
    }
    with session_scope(venue.engine) as s:
        pos = s.scalars(select(StoredPosition).where(StoredPosition.closed_at.is_(None))).one()
        assert (pos.side, pos.quantity) == ("long", Decimal("0.02"))
        assert s.scalar(select(Fill.quantity)) == Decimal("0.02")
    assert _execution(venue.engine).status == "filled"
    assert report.position == {"side": "long", "quantity": "0.020", "entry_price": "50000.0", "leverage": "5"} or (
        report.position is not None and Decimal(report.position["quantity"]) == Decimal("0.02")
    )


def test_replaying_a_decision_sends_nothing_again(venue: Venue) -> None:
    first = venue.execute()
    requests = venue.book.create_requests
    second = venue.execute()
    assert second.to_dict() == first.to_dict()
    assert venue.book.create_requests == requests
    assert venue.book.accepted == [venue.cid()]


# ---------------------------------------------------------------- faults: exactly one order each


FAULTS = {
    "timeout_after_accept": [Fault("timeout_after_accept", delay_s=TIMEOUT_MS / 1000 + 0.4)],
    "error_5xx_before": [Fault("error_5xx")],
    "error_5xx_after_accept": [Fault("error_5xx_after_accept")],
    "rate_limit_429": [Fault("rate_limit", status=429, retry_after_s=0.2)],
    "rate_limit_418_twice": [Fault("rate_limit", status=418, retry_after_s=0.1)] * 2,
    "timeout_then_5xx": [Fault("timeout_after_accept", delay_s=TIMEOUT_MS / 1000 + 0.4), Fault("error_5xx")],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_exactly_one_order_under_fault(venue: Venue, fault: str) -> None:
    venue.book.inject(*FAULTS[fault])
    started = time.monotonic()
    report = venue.execute()
    elapsed = time.monotonic() - started

    assert report.status == "filled", report.to_dict()
    assert venue.book.accepted == [venue.cid()], "exactly one order on the venue for this decision"
    assert _orders(venue.engine)[venue.cid()].status == "filled"
    assert report.orders[0].filled == Decimal("0.02")
    assert elapsed < 5


def test_partial_fill_is_reported_and_recorded(venue: Venue) -> None:
    venue.book.inject(Fault("partial_fill", fraction=Decimal("0.5")))
    report = venue.execute(stop_loss=Decimal(49000))
    assert report.status == "partially_filled", report.to_dict()
    assert report.orders[0].filled == Decimal("0.01")
    assert "filled 0.01" in (report.reason or "")
    # the stop protects what was filled, not what was asked for
    assert report.orders[1].leg == "sl" and report.orders[1].quantity == Decimal("0.01")
    assert venue.book.accepted == [venue.cid(), venue.cid(leg="sl")]
    with session_scope(venue.engine) as s:
        assert s.scalar(select(Fill.quantity)) == Decimal("0.01")


def test_duplicate_client_id_means_already_placed(venue: Venue) -> None:
    """A previous run wrote the row and sent the order, then died; the venue's read side lags, so
    the first lookup misses and the create is answered 'duplicate': the order is looked up again."""
    with session_scope(venue.engine) as s:
        repo.create_order(s, account_id=venue.account_id, client_order_id=venue.cid(), symbol="BTC/USDT:USDT",
                          side="buy", quantity=Decimal("0.02"))  # fmt: skip
    with venue.book.lock:
        venue.book.book_order(venue.cid(), "BTC", "buy", "MARKET", Decimal("0.02"), None, None, False, Decimal(1))
    venue.book.lookup_misses = 1

    report = venue.execute()

    assert report.status == "filled", report.to_dict()
    assert venue.book.create_requests == 1  # the one refused as duplicate
    assert venue.book.accepted == [venue.cid()]
    assert _orders(venue.engine)[venue.cid()].status == "filled"


# ---------------------------------------------------------------- rejections, stored with their reason


def test_insufficient_margin_is_rejected_and_stored(venue: Venue) -> None:
    venue.book.inject(Fault("insufficient_margin"))
    report = venue.execute()
    assert report.status == "rejected"
    assert report.reason is not None and report.reason.startswith("open: insufficient_margin:")
    assert venue.book.accepted == []
    order = _orders(venue.engine)[venue.cid()]
    assert order.status == "rejected"
    with session_scope(venue.engine) as s:
        detail = s.scalars(select(OrderEvent.detail).where(OrderEvent.to_status == "rejected")).one()
    assert detail["reason"] == "insufficient_margin"
    stored = _execution(venue.engine)
    assert (stored.status, stored.reason) == ("rejected", report.reason)


def test_rate_limit_backoff_honours_retry_after_and_is_bounded(venue: Venue) -> None:
    venue.book.inject(Fault("rate_limit", retry_after_s=0.3), Fault("rate_limit", retry_after_s=0.3))
    started = time.monotonic()
    report = venue.execute()
    elapsed = time.monotonic() - started
    assert report.status == "filled"
    assert venue.sleeps == [0.3, 0.3]
    assert 0.6 <= elapsed < 2.5
    assert venue.book.accepted == [venue.cid()]


def test_retry_after_beyond_the_budget_gives_up_without_an_order(venue: Venue) -> None:
    venue.book.inject(Fault("rate_limit", retry_after_s=30))
    started = time.monotonic()
    report = venue.execute()
    assert time.monotonic() - started < 2
    assert report.status == "rejected" and "rate_limited" in (report.reason or "")
    assert venue.book.accepted == [] and venue.sleeps == []
    assert _orders(venue.engine)[venue.cid()].status == "failed"


# ---------------------------------------------------------------- bad input: nothing sent


def test_unknown_symbol(venue: Venue) -> None:
    report = venue.execute(symbol="FOOUSDT")
    assert report.status == "rejected"
    assert report.reason == f"unknown_symbol: symbol: 'FOOUSDT' is not a USDT-margined perpetual on {venue.name}"
    assert venue.book.create_requests == 0
    assert _execution(venue.engine).reason == report.reason


# Binance: step and minimum 0.001 BTC, 100 USDT notional; OKX: 0.01 contracts of 0.01 BTC, no notional floor
BELOW = {
    ("binanceusdm", "quantity"): "0.0001",
    ("binanceusdm", "notional"): "0.001",
    ("okx", "quantity"): "0.00005",
}


@pytest.mark.parametrize("what", ["quantity", "notional"])
def test_below_minimum(venue: Venue, what: str) -> None:
    quantity = BELOW.get((venue.name, what))
    if quantity is None:
        pytest.skip(f"{venue.name} has no minimum {what}")
    report = venue.execute(quantity=Decimal(quantity))
    assert report.status == "rejected"
    assert report.reason is not None and report.reason.startswith(f"below_minimum: {what}:")
    assert venue.book.create_requests == 0


def test_leverage_above_the_exchange_maximum(venue: Venue) -> None:
    report = venue.execute(symbol="ETHUSDT", reference_price=Decimal(3000), leverage=110, quantity=Decimal("0.1"))
    assert report.status == "rejected"
    assert (
        report.reason == f"leverage_too_high: leverage: 110x for ETH/USDT:USDT is above {venue.name}'s maximum of 100x"
    )
    assert venue.book.create_requests == 0 and "ETH" not in venue.book.leverage


def test_leverage_above_the_account_maximum(venue: Venue) -> None:
    with session_scope(venue.engine) as s:
        repo.set_limits(s, f"acct-{venue.name}-True", max_leverage=3)
    report = venue.execute(leverage=4)
    assert report.reason is not None and "above account 'acct-" in report.reason and "maximum of 3x" in report.reason
    assert venue.book.create_requests == 0


def test_kill_switch_refuses(venue: Venue) -> None:
    venue.cache.engage_kill_switch("operator: exchange incident")
    report = venue.execute()
    assert report.status == "rejected"
    assert report.reason == "trading_halted: order refused: kill switch engaged: operator: exchange incident"
    assert venue.book.request_log == []


def test_account_without_keys(db: Engine, cache: Cache) -> None:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    acct = _make_account(db, cipher, "binanceusdm", keys=False)
    with binance_server() as server:
        v = Venue("binanceusdm", server.book, server.url, db, cache, cipher, acct)
        report = v.execute()
        assert server.book.request_log == []
    assert report.status == "rejected"
    assert report.reason == (
        "missing_credentials: account 'acct-binanceusdm-False' (binanceusdm) has no API keys; "
        "store them with `tradingbot keys set --account acct-binanceusdm-False`"
    )


# ---------------------------------------------------------------- actions


def test_reverse_then_flat(venue: Venue) -> None:
    venue.execute("d-1")
    report = venue.execute("d-2", action="reverse", reference_price=Decimal(50000))
    assert report.status == "filled", report.to_dict()
    assert [(o.leg, o.side) for o in report.orders] == [("close", "sell"), ("open", "sell")]
    assert venue.book.positions["BTC"][0] == Decimal("-0.02")
    assert venue.execute("d-3", action="short").status == "no_op"
    flat = venue.execute("d-4", action="flat")
    assert flat.status == "filled" and flat.orders[0].reduce_only if hasattr(flat.orders[0], "reduce_only") else True
    assert "BTC" not in venue.book.positions
    assert venue.execute("d-5", action="close").reason == "no open position to close"
    with session_scope(venue.engine) as s:
        assert s.scalars(select(StoredPosition).where(StoredPosition.closed_at.is_(None))).all() == []


# ---------------------------------------------------------------- unknown outcome -> reconcile


def test_unresolved_timeout_stays_pending_and_reconcile_fixes_it(venue: Venue) -> None:
    """The venue booked the order but every lookup misses (read side down): no resend may book a
    second one; the decision stays pending, and reconcile later stores the fill."""
    venue.book.inject(Fault("timeout_after_accept", delay_s=TIMEOUT_MS / 1000 + 0.4))
    venue.book.lookup_misses = 10**6
    report = venue.execute()
    assert report.status == "pending" and "outcome_unknown" in (report.reason or "")
    assert venue.book.accepted == [venue.cid()]
    assert _orders(venue.engine)[venue.cid()].status == "pending"

    venue.book.lookup_misses = 0
    venue.book.positions.pop("BTC")  # and a stop closed the position on the venue meanwhile
    account = load_account(venue.sessions, venue.account_id)
    assert account is not None
    exchange = venue.factory()(account)
    dry = reconcile_account(venue.sessions, exchange, venue.account_id, fix=False)
    kinds = {(d.kind, d.key) for d in dry.drifts}
    assert ("order", venue.cid()) in kinds and ("position", "BTC/USDT:USDT") in kinds
    assert _orders(venue.engine)[venue.cid()].status == "pending"  # a dry run changes nothing

    fixed = reconcile_account(venue.sessions, exchange, venue.account_id, fix=True)
    assert all(d.fixed for d in fixed.drifts)
    assert _orders(venue.engine)[venue.cid()].status == "filled"
    assert reconcile_account(venue.sessions, exchange, venue.account_id).drifts == []
    assert venue.book.accepted == [venue.cid()]


def test_secrets_are_not_in_the_adapter_repr_or_errors(venue: Venue) -> None:
    creds = ExchangeCredentials(Secret(API_KEY), Secret("wrong-secret-000000000", visible=0), Secret(PASSPHRASE))
    ex = CcxtExchange(venue.name, creds, testnet=True, api_urls=local_urls(venue.name, venue.url))  # type: ignore[arg-type]
    assert API_KEY not in repr(ex)
    with pytest.raises(Exception) as info:
        ex.fetch_balance()
    assert API_KEY not in str(info.value) and "wrong-secret" not in str(info.value)
