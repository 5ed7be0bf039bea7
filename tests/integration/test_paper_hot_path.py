"""The paper venue's fill path on a price update (docs/adr/0007-paper-matching.md): how many SQL
statements one stop fill costs, that the numbers it writes are right, and that the matcher's engine
(no pool pre-ping) survives a connection the server dropped while it was idle. Real PostgreSQL and
Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.exchange.paper import PaperExchange
from tradingbot.adapters.exchange.paper_matcher import PaperMatcher
from tradingbot.adapters.feed.messages import BINANCE
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.adapters.persistence.models import PaperOrder, PaperPosition
from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE
from tradingbot.domain.exchange import OrderRequest

BTC = "BTC/USDT:USDT"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def matcher_engine(servers: Servers, db: Engine) -> Iterator[Engine]:
    """An engine like the matcher's (start_paper_matcher): pool of 1, no pre-ping."""
    engine = create_db_engine(servers.database_url, pre_ping=False)
    yield engine
    engine.dispose()


def _exchange(engine: Engine, cache: Cache, account_id: int) -> PaperExchange:
    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    return PaperExchange(sessions, cache, account_id)


def _armed(engine: Engine, cache: Cache, *, leverage: int | None = None) -> tuple[int, PaperExchange]:
    """A paper account long 0.01 BTC from 50,000 with a reduce-only stop at 49,000."""
    with session_scope(engine) as s:
        acct, _ = repo.create_account(s, name=f"hot-{leverage}", exchange="paper", testnet=True)
    ex = _exchange(engine, cache, acct.id)
    if leverage is not None:
        ex.set_leverage(BTC, leverage)
    cache.put_price(BINANCE, BTC, Decimal(50000))
    ex.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.01"), "open-1"))
    ex.create_order(OrderRequest(BTC, "sell", "stop_market", Decimal("0.01"), "sl-1", trigger_price=Decimal(49000),
                                 reduce_only=True))  # fmt: skip
    return acct.id, ex


@pytest.mark.parametrize("leverage", [None, 5])
def test_a_stop_fill_is_three_statements_and_books_what_the_venue_would(
    matcher_engine: Engine, cache: Cache, leverage: int | None
) -> None:
    account_id, ex = _armed(matcher_engine, cache, leverage=leverage)
    with session_scope(matcher_engine) as s:
        wallet_before = repo.lock_paper_wallet(s, account_id, Decimal(0)).balance
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        statements.append(statement.split(maxsplit=1)[0])

    event.listen(matcher_engine, "before_cursor_execute", count)
    try:
        assert ex.on_market({BTC: Decimal("48990")}, {}) == ["sl-1"]
    finally:
        event.remove(matcher_engine, "before_cursor_execute", count)
    # the wallet lock with the positions and their settings, the resting orders, then the order,
    # position and wallet rows in one statement: 3, where it was 8 before (plus the pool's ping)
    assert statements == ["SELECT", "SELECT", "WITH"], statements
    with session_scope(matcher_engine) as s:
        pos = s.get(PaperPosition, (account_id, BTC))
        stop = s.scalars(select(PaperOrder).where(PaperOrder.client_order_id == "sl-1")).one()
        wallet = repo.lock_paper_wallet(s, account_id, Decimal(0)).balance
        entry = s.scalars(select(PaperOrder).where(PaperOrder.client_order_id == "open-1")).one()
        assert pos is not None and pos.quantity == 0 and pos.leverage == (leverage or 1)
        assert stop.status == "filled" and stop.filled == Decimal("0.01")
    # the stop executes as a market sell at the crossing price less slippage, at BTC's 0.1 tick
    fill = (Decimal("48990") * (1 - SLIPPAGE_BPS / Decimal(10_000))).quantize(Decimal("0.1"))
    assert stop.average_price == fill and entry.average_price is not None
    pnl = Decimal("0.01") * (fill - entry.average_price)
    assert wallet == wallet_before + pnl - Decimal("0.01") * fill * TAKER_FEE_RATE


def test_the_matcher_fills_once_after_its_idle_connection_was_dropped(
    matcher_engine: Engine, db: Engine, cache: Cache
) -> None:
    account_id, _ = _armed(matcher_engine, cache)

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(matcher_engine)

    matcher = PaperMatcher(sessions, cache)
    matcher.reload()  # the pooled connection (pool of 1) is now the one the next fill would use
    with matcher_engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with db.connect() as admin:  # the server drops it while it idles, as a proxy or failover would
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
    tick = json.dumps({"t": 0, "u": [[BINANCE, BTC, "48990", None, None, None]]})
    assert matcher.on_tick(tick) == ["sl-1"]
    assert matcher.stats.errors == 0  # retried once on a fresh connection, not logged as a failure
    assert matcher.on_tick(tick) == []  # and never twice
    with session_scope(db) as s:
        filled = s.scalars(select(PaperOrder).where(PaperOrder.account_id == account_id,
                                                    PaperOrder.status == "filled")).all()  # fmt: skip
        assert sorted(o.client_order_id for o in filled) == ["open-1", "sl-1"]
