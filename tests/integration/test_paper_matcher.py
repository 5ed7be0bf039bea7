"""The paper venue driven by the market: the real feed service reads the local Binance WebSocket
stand-in and writes real Redis; the paper matcher (threads of this process, as `make run` starts it)
consumes the feed's ticks and fills, liquidates and settles funding in real PostgreSQL. Nothing here
reads the paper account through the venue (no fetch_*): what happens, happens because of a tick."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.exchange.paper import PaperExchange
from tradingbot.adapters.exchange.paper_matcher import PaperMatcherThread, start_paper_matcher
from tradingbot.adapters.feed.messages import BINANCE
from tradingbot.adapters.feed.pool import Subscription, Venue
from tradingbot.adapters.feed.service import FeedConfig, FeedService
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import PaperFundingPayment, PaperOrder
from tradingbot.adapters.persistence.repositories import paper as paper_repo
from tradingbot.domain.exchange import OrderRequest

from ._feed_server import FakeBinance, trade_frame

BTC = "BTC/USDT:USDT"
pytestmark = pytest.mark.timeout(60)


def _now_ms() -> int:
    return int(time.time() * 1000)


def mark_frame(mark: str, rate: str, next_funding_ms: int, event_ms: int | None = None) -> str:
    """Binance's ``markPriceUpdate`` with the next funding time we choose (``T``; ``r`` is the rate
    that settles then: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream)."""
    e = event_ms or _now_ms()
    data = {"e": "markPriceUpdate", "E": e, "s": "BTCUSDT", "p": mark, "i": mark, "P": mark, "r": rate,
            "T": next_funding_ms}  # fmt: skip
    return json.dumps({"stream": "btcusdt@markPrice@1s", "data": data})


def _account(engine: Engine, name: str = "paper") -> int:
    with session_scope(engine) as s:
        acct, _ = repo.create_account(s, name=name, exchange="paper", testnet=True)
        return acct.id


def _paper(engine: Engine, cache: Cache, account_id: int) -> PaperExchange:
    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    return PaperExchange(sessions, cache, account_id)


def _order(engine: Engine, account_id: int, cid: str) -> PaperOrder:
    with session_scope(engine) as s:
        order = repo.paper_order(s, account_id, cid)
        assert order is not None
        s.expunge(order)
        return order


def _wallet(engine: Engine, account_id: int) -> Decimal:
    with session_scope(engine) as s:
        return repo.lock_paper_wallet(s, account_id, Decimal(0)).balance


def _quantity(engine: Engine, account_id: int) -> Decimal:
    with session_scope(engine) as s:
        pos = repo.paper_position(s, account_id, BTC)
        return pos.quantity if pos is not None else Decimal(0)


@contextmanager
def _matchers(servers: Servers, n: int = 1) -> Iterator[list[PaperMatcherThread]]:
    # a long refresh: whatever fills here was driven by a tick (or a book announcement), not a timer
    handles = [start_paper_matcher(servers.database_url, servers.redis_url, refresh_s=600) for _ in range(n)]
    try:
        deadline = time.monotonic() + 10
        while not all(h.matcher.stats.reloads for h in handles):  # subscribed and loaded
            assert time.monotonic() < deadline, "matcher did not start"
            time.sleep(0.01)
        yield handles
    finally:
        for h in handles:
            h.stop()


@asynccontextmanager
async def _feed(servers: Servers) -> AsyncIterator[asyncio.Queue[str]]:
    """The real feed on trades + mark price of BTCUSDT; frames put on the queue go out on the socket."""
    frames: asyncio.Queue[str] = asyncio.Queue()

    async def script(ws: web.WebSocketResponse, request: web.Request) -> None:
        while not ws.closed:
            await ws.send_str(await frames.get())

    fake = await FakeBinance([script], lambda: []).start()
    client = aioredis.Redis.from_url(servers.redis_url)
    service = FeedService(client, [Venue(BINANCE, fake.ws_url, fake.rest_url)], [Subscription(BTC, ())],
                          FeedConfig(idle_timeout_s=10, warmup=False))  # fmt: skip
    task = asyncio.create_task(service.run())
    try:
        yield frames
    finally:
        service.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
        await fake.stop()


async def _until(check: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} not met in time"
        await asyncio.sleep(0.02)


def _long(db: Engine, cache: Cache, leverage: int = 10, qty: str = "0.1") -> tuple[int, PaperExchange]:
    acct = _account(db)
    cache.put_price(BINANCE, BTC, Decimal(50000))
    ex = _paper(db, cache, acct)
    ex.set_leverage(BTC, leverage)
    # 50000 + 5 bps of slippage = 50025.0, on BTCUSDT's 0.1 tick
    assert ex.create_order(OrderRequest(BTC, "buy", "market", Decimal(qty), "open")).average_price == Decimal("50025.0")
    return acct, ex


def test_stop_fires_on_a_price_tick_with_no_account_read(db: Engine, cache: Cache, servers: Servers) -> None:
    acct, ex = _long(db, cache)
    ex.create_order(OrderRequest(BTC, "sell", "stop_market", Decimal("0.1"), "sl", trigger_price=Decimal(49000),
                                 reduce_only=True))  # fmt: skip
    ex.create_order(OrderRequest(BTC, "sell", "take_profit_market", Decimal("0.1"), "tp",
                                 trigger_price=Decimal(52000), reduce_only=True))  # fmt: skip
    wallet_before = _wallet(db, acct)

    async def body() -> None:
        with _matchers(servers) as [m]:
            async with _feed(servers) as frames:
                await frames.put(trade_frame("49000.1", _now_ms()))  # a tick above the stop: nothing
                await _until(lambda: m.matcher.last.get(BTC) == Decimal("49000.1"), what="first tick")
                assert _order(db, acct, "sl").status == "open" and m.matcher.stats.matched == 0
                await frames.put(trade_frame("48990.7", _now_ms()))
                await _until(lambda: _order(db, acct, "sl").status == "filled", what="stop filled")

    asyncio.run(body())
    sl = _order(db, acct, "sl")
    # 48990.7 less 5 bps = 48966.20465, filled at the 0.1 tick
    assert (sl.filled, sl.average_price) == (Decimal("0.1"), Decimal("48966.2"))
    assert _quantity(db, acct) == 0
    assert _order(db, acct, "tp").status == "open"  # the matcher does not guess: a target fires on its own price
    pnl = Decimal("0.1") * (Decimal("48966.2") - Decimal("50025.0"))
    assert _wallet(db, acct) == wallet_before + pnl - Decimal("0.1") * Decimal("48966.2") * Decimal("0.0005")


def test_take_profit_fires_on_a_price_tick(db: Engine, cache: Cache, servers: Servers) -> None:
    acct, ex = _long(db, cache)
    ex.create_order(OrderRequest(BTC, "sell", "take_profit_market", Decimal("0.1"), "tp",
                                 trigger_price=Decimal(51000), reduce_only=True))  # fmt: skip

    async def body() -> None:
        with _matchers(servers):
            async with _feed(servers) as frames:
                await frames.put(trade_frame("51000.05", _now_ms()))
                await _until(lambda: _order(db, acct, "tp").status == "filled", what="target filled")

    asyncio.run(body())
    # 51000.05 less 5 bps = 50974.549975 -> 50974.5 on the tick
    assert _order(db, acct, "tp").average_price == Decimal("50974.5")
    assert _quantity(db, acct) == 0


def test_position_is_liquidated_when_the_mark_crosses_its_liquidation_price(
    db: Engine, cache: Cache, servers: Servers
) -> None:
    acct, _ = _long(db, cache, leverage=20)
    margin = Decimal("0.1") * Decimal("50025.0") / 20  # isolated margin 250.125
    # Binance's isolated long: LP = (qty*entry - margin - cum) / (qty * (1 - mmr)), first BTCUSDT
    # bracket (mmr 0.4 %, cum 0): 4752.375 / 0.0996 = 47714.608... -> 47714.6 on the tick
    wallet_before = _wallet(db, acct)

    async def body() -> None:
        with _matchers(servers) as [m]:
            async with _feed(servers) as frames:
                later = _now_ms() + 3_600_000
                await frames.put(trade_frame("47600.0", _now_ms()))  # the last price may cross: the mark decides
                await frames.put(mark_frame("47800.0", "0.0001", later))
                await _until(lambda: m.matcher.marks.get(BTC) == Decimal("47800.0"), what="first mark")
                assert _quantity(db, acct) == Decimal("0.1")
                await frames.put(mark_frame("47700.0", "0.0001", later))
                await _until(lambda: _quantity(db, acct) == 0, what="liquidation")

    asyncio.run(body())
    with session_scope(db) as s:
        liq = s.scalars(select(PaperOrder).where(PaperOrder.client_order_id.like("paper-liq-BTCUSDT-%"))).one()
        assert (liq.side, liq.quantity, liq.average_price, liq.status) == ("sell", Decimal("0.1"), Decimal("47714.6"),
                                                                           "filled")  # fmt: skip
    # the loss is the isolated margin: PnL to the liquidation price, the rest (its maintenance margin) to the fund
    assert _wallet(db, acct) == wallet_before - margin


def test_funding_is_settled_once_at_the_funding_time_even_with_two_matchers(
    db: Engine, cache: Cache, servers: Servers
) -> None:
    long_acct, _ = _long(db, cache)
    short_acct = _account(db, "short")
    _paper(db, cache, short_acct).create_order(OrderRequest(BTC, "sell", "market", Decimal("0.15"), "open"))
    wallets = {a: _wallet(db, a) for a in (long_acct, short_acct)}
    funding_ms = (_now_ms() // 1000 + 2) * 1000  # a whole second, about 1-2 s from now

    def rows() -> list[PaperFundingPayment]:
        with session_scope(db) as s:
            out = list(s.scalars(select(PaperFundingPayment).order_by(PaperFundingPayment.account_id)))
            s.expunge_all()
            return out

    async def body() -> None:
        with _matchers(servers, n=2) as matchers:
            async with _feed(servers) as frames:
                early: list[PaperFundingPayment] | None = None
                while _now_ms() < funding_ms:  # the venue's mark stream, once every 100 ms until the funding time
                    await frames.put(mark_frame("50100.0", "0.0001", funding_ms))
                    await asyncio.sleep(0.1)
                    if early is None and funding_ms - _now_ms() < 400 and matchers[0].matcher.marks:
                        early = rows()
                assert early == [], "nothing is charged before the funding time"
                # after it the venue announces the next funding time (8 h later) with a new rate
                for _ in range(5):
                    await frames.put(mark_frame("50200.0", "0.0003", funding_ms + 8 * 3_600_000))
                    await asyncio.sleep(0.1)
                await _until(lambda: len(rows()) == 2, what="two funding payments")
                await asyncio.sleep(0.3)  # both matchers had their chance
                assert sum(m.matcher.stats.funding_settled for m in matchers) == 2
            # a matcher (re)started later finds the same funding time pending in Redis: nothing new
            with _matchers(servers) as [late]:
                late.matcher.settle_due()
                assert late.matcher.stats.funding_settled == 0

    asyncio.run(body())
    t = dt.datetime.fromtimestamp(funding_ms / 1000, dt.UTC)
    got = [(r.account_id, r.funding_time, r.side, r.quantity, r.mark_price, r.rate, r.amount) for r in rows()]
    # positive rate: the long pays notional x rate at the mark (0.1 x 50100 x 0.0001), the short receives
    # (0.15 x 50100 x 0.0001)
    assert got == [
        (long_acct, t, "long", Decimal("0.1"), Decimal("50100.0"), Decimal("0.0001"), Decimal("0.50100000")),
        (short_acct, t, "short", Decimal("0.15"), Decimal("50100.0"), Decimal("0.0001"), Decimal("-0.75150000")),
    ]
    assert _wallet(db, long_acct) == wallets[long_acct] - Decimal("0.501")
    assert _wallet(db, short_acct) == wallets[short_acct] + Decimal("0.7515")
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(PaperFundingPayment)) == 2
        assert paper_repo.paper_funding_payments(s, long_acct)[0].amount == Decimal("0.501")
