"""The paper venue's matching engine, driven by the market feed (docs/adr/0007-paper-matching.md).

The feed's writer PUBLISHes every batch's prices, marks and funding documents on ``tb:ticks``
(``adapters/feed/store.py``) in the same Redis script that writes the keys. A :class:`PaperMatcher`
subscribes to it and keeps, in memory, the trigger level of every resting paper order (limit,
stop-market, take-profit-market) and the liquidation price of every paper position, of every account.
A tick that crosses a level makes it call :meth:`PaperExchange.on_market` for that account: one
transaction that locks the wallet, re-checks the orders against the tick's price and the positions
against its mark, and fills or liquidates. The levels are a filter only; the locked re-check decides,
so two matchers (a deploy overlap, or `make run` beside a test) never fill an order twice.

The levels are reloaded from PostgreSQL when ``tb:paper:book`` announces a change (the paper venue
publishes it after each committing create, cancel, fill, liquidation or funding), on every
(re)subscribe, and every ``refresh_s`` seconds whatever happens (a missed announcement).

Funding: a funding document names the next funding time and its rate (Binance ``markPriceUpdate``
``r`` / ``T``: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream;
OKX ``funding-rate`` ``fundingRate`` / ``fundingTime``). The matcher settles each funding time it has
seen once the clock passes it, for every account holding the symbol, at the last rate published
before it. The venue publishes the time, so a symbol on a 4 h or 1 h schedule (Binance lists them
in ``GET /fapi/v1/fundingInfo``, ``fundingIntervalHours``:
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-Info)
settles on its own schedule, not on an assumed 00:00 / 08:00 / 16:00. The pending (time, rate) is also
kept in Redis (``tb:paper:funding:{exchange}:{symbol}``, 2 days), so a matcher that restarts after the
funding time still settles it; the ``paper_funding_payments`` primary key makes it once per
(account, symbol, funding time) whichever matcher gets there.

Start it with :func:`start_paper_matcher` (a daemon thread; ``.stop()``), or run
``python -m tradingbot.entrypoints.paper_matcher`` as its own process (the Fargate feed task's
second container).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import PREFIX, Cache
from tradingbot.adapters.exchange.paper import PAPER_BOOK_CHANNEL, PAPER_MARKETS, PaperExchange
from tradingbot.adapters.feed.store import TICKS_CHANNEL
from tradingbot.adapters.persistence.db import (
    SessionFactory,
    create_db_engine,
    run_once_more_if_dropped,
    session_scope,
)
from tradingbot.adapters.persistence.repositories import paper as paper_repo
from tradingbot.domain.margin import liquidation_price, maintenance_margin
from tradingbot.errors import TradingBotError

log = logging.getLogger(__name__)

FUNDING_PENDING_TTL_S = 2 * 24 * 3600


def funding_pending_key(exchange: str, symbol: str) -> str:
    return f"{PREFIX}paper:funding:{exchange}:{symbol}"


@dataclass(frozen=True)
class Level:
    """Fires when the price (``on_mark``: the mark) is at or below ``price`` (``below``), else at or above."""

    account_id: int
    price: Decimal
    below: bool
    on_mark: bool

    def crossed(self, last: Decimal | None, mark: Decimal | None) -> bool:
        p = mark if self.on_mark else last
        if p is None:
            return False
        return p <= self.price if self.below else p >= self.price


@dataclass
class MatcherStats:
    ticks: int = 0
    matched: int = 0  # account transactions run because a level was crossed
    filled: list[str] = field(default_factory=list)  # client order ids, newest last (bounded)
    funding_settled: int = 0
    reloads: int = 0
    errors: int = 0


def _order_level(
    account_id: int, side: str, otype: str, price: Decimal | None, trigger: Decimal | None
) -> Level | None:
    if otype == "limit":
        return None if price is None else Level(account_id, price, side == "buy", False)
    if trigger is None:
        return None
    # a sell stop fires on the way down, a sell take-profit on the way up (and the reverse for buys)
    return Level(account_id, trigger, (side == "sell") == (otype == "stop_market"), False)


class PaperMatcher:
    def __init__(
        self,
        session_factory: SessionFactory,
        cache: Cache,
        *,
        price_source: str = "binanceusdm",
        refresh_s: float = 5.0,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._sessions = session_factory
        self._cache = cache
        self.price_source = price_source
        self.refresh_s = refresh_s
        self._clock_ms = clock_ms
        self.levels: dict[str, list[Level]] = {}
        self.marks: dict[str, Decimal] = {}
        self.last: dict[str, Decimal] = {}
        self.pending_funding: dict[str, dict[int, Decimal]] = {}
        self.stats = MatcherStats()
        self._loaded_at = 0.0

    def exchange(self, account_id: int) -> PaperExchange:
        return PaperExchange(self._sessions, self._cache, account_id, price_source=self.price_source)

    # ------------------------------------------------------------ the trigger levels

    def reload(self) -> None:
        """Rebuild every account's levels from PostgreSQL (no locks: a filter, re-checked on a hit)."""
        with self._sessions() as s:
            book = paper_repo.paper_book(s)
        levels: dict[str, list[Level]] = {}
        for o in book.orders:
            level = _order_level(o.account_id, o.side, o.type, o.price, o.trigger_price)
            if level is not None:
                levels.setdefault(o.symbol, []).append(level)
        by_account: dict[int, list[Any]] = {}
        for p in book.positions:
            by_account.setdefault(p.account_id, []).append(p)
        for account_id, positions in by_account.items():
            for p in positions:
                lp = self._liquidation_level(book, account_id, p, positions)
                if lp > 0:
                    levels.setdefault(p.symbol, []).append(Level(account_id, lp, p.side == "long", True))
        self.levels = levels
        self._loaded_at = time.monotonic()
        self.stats.reloads += 1

    def _liquidation_level(self, book: paper_repo.PaperBook, account_id: int, p: Any, positions: list[Any]) -> Decimal:
        market = PAPER_MARKETS.get(p.symbol)
        if market is None:
            return Decimal(0)
        if book.margin_modes.get((account_id, p.symbol), "isolated") == "isolated":
            return liquidation_price(market.brackets, p.side, p.quantity, p.entry_price,
                                     p.quantity * p.entry_price / p.leverage)  # fmt: skip
        other_mm = other_upnl = Decimal(0)
        for q in positions:
            if q.symbol == p.symbol or book.margin_modes.get((account_id, q.symbol), "isolated") != "cross":
                continue
            mark = self.marks.get(q.symbol) or self.last.get(q.symbol) or q.entry_price
            q_market = PAPER_MARKETS.get(q.symbol)
            if q_market is not None:
                other_mm += maintenance_margin(q_market.brackets, q.quantity * mark)
            other_upnl += q.quantity * (mark - q.entry_price) * (1 if q.side == "long" else -1)
        wallet = book.wallets.get(account_id, Decimal(0))
        return liquidation_price(market.brackets, p.side, p.quantity, p.entry_price, wallet,
                                 other_maintenance=other_mm, other_upnl=other_upnl)  # fmt: skip

    # ------------------------------------------------------------ ticks

    def on_tick(self, message: str | bytes) -> list[str]:
        """Apply one ``tb:ticks`` message; returns the client order ids it filled or liquidated."""
        self.stats.ticks += 1
        try:
            doc = json.loads(message)
            rows = doc["u"]
        except (ValueError, KeyError, TypeError):
            log.warning("skipped a malformed tick message: %.80r", message)
            return []
        # funding that came due settles at the mark known at the funding time, before this (later) tick
        # replaces it: the venue charges at the mark of the settlement moment, not the next one
        now = int(time.time() * 1000)
        if any(t <= now for pending in self.pending_funding.values() for t in pending):
            self.settle_due(now)
        touched: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        for row in rows:
            try:
                exchange, symbol, last, mark, rate, next_ms = row
                if exchange != self.price_source:
                    continue
                last_d = Decimal(last) if last is not None else None
                mark_d = Decimal(mark) if mark is not None else None
                rate_d = Decimal(rate) if rate is not None else None
            except (ValueError, TypeError, InvalidOperation):
                log.warning("skipped a malformed tick row: %.80r", row)
                continue
            if last_d is not None:
                self.last[symbol] = last_d
            if mark_d is not None:
                self.marks[symbol] = mark_d
            if rate_d is not None and next_ms:
                self._note_funding(symbol, int(next_ms), rate_d)
            touched[symbol] = (last_d, mark_d)
        accounts: dict[int, tuple[set[str], set[str]]] = {}  # symbols whose orders / positions to look at
        for symbol, (last_d, mark_d) in touched.items():
            # liquidation watches the mark only, as the venues do (a last-price spike liquidates nobody);
            # a symbol whose feed carries no mark is liquidated by account reads (PaperExchange._mark)
            for level in self.levels.get(symbol, ()):
                if level.crossed(last_d, mark_d):
                    accounts.setdefault(level.account_id, (set(), set()))[1 if level.on_mark else 0].add(symbol)
        done: list[str] = []
        for account_id, (order_symbols, mark_symbols) in accounts.items():
            prices = {s: self.last[s] for s in order_symbols | mark_symbols if s in self.last}
            # marks only where a liquidation level was crossed: an order-only hit skips the margin check
            marks = {s: self.marks[s] for s in mark_symbols if s in self.marks}
            # the engine skips the pool's pre-ping on this path (one round trip less per fill): a
            # connection that died idle shows here, and on_market is safe to run again (it re-reads
            # the resting orders under the wallet lock, so a fill that did commit is not repeated)
            match = partial(self.exchange(account_id).on_market, prices, marks)
            done += self._guard(partial(run_once_more_if_dropped, match), [])
            self.stats.matched += 1
        if accounts:
            self._guard(self.reload, None)
        if done:
            self.stats.filled = (self.stats.filled + done)[-1000:]
        return done

    def _guard[T](self, op: Callable[[], T], default: T) -> T:
        """Database or venue trouble is logged and counted, never fatal: the next tick retries."""
        try:
            return op()
        except (SQLAlchemyError, TradingBotError, OSError) as exc:
            self.stats.errors += 1
            log.warning("paper matcher: %s: %s", type(exc).__name__, exc)
            return default

    # ------------------------------------------------------------ funding

    def _note_funding(self, symbol: str, next_ms: int, rate: Decimal) -> None:
        pending = self.pending_funding.setdefault(symbol, {})
        if pending.get(next_ms) == rate:
            return
        pending[next_ms] = rate
        value = json.dumps({"time": next_ms, "rate": str(rate)})
        try:
            self._cache.client.set(funding_pending_key(self.price_source, symbol), value, ex=FUNDING_PENDING_TTL_S)
        except (RedisError, OSError) as exc:
            log.warning("pending funding of %s not kept in Redis: %s", symbol, type(exc).__name__)

    def load_pending_funding(self) -> None:
        """What a previous run (or another matcher) saw last: settled below if its time has passed."""
        for symbol in PAPER_MARKETS:
            try:
                raw = self._cache.client.get(funding_pending_key(self.price_source, symbol))
            except (RedisError, OSError):
                return
            if raw is None:
                continue
            doc = json.loads(raw)
            self.pending_funding.setdefault(symbol, {}).setdefault(int(doc["time"]), Decimal(doc["rate"]))

    def settle_due(self, now_ms: int | None = None) -> int:
        """Settle every pending funding time that has passed; returns the payments recorded."""
        now = self._clock_ms() if now_ms is None else now_ms
        settled = 0
        for symbol, pending in self.pending_funding.items():
            for t_ms in sorted(t for t in pending if t <= now):
                ok, n = self._settle(symbol, t_ms, pending[t_ms])
                if ok:
                    del pending[t_ms]
                settled += n
        self.stats.funding_settled += settled
        return settled

    def _settle(self, symbol: str, t_ms: int, rate: Decimal) -> tuple[bool, int]:
        funding_time = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
        mark = self.marks.get(symbol)
        try:
            with self._sessions() as s:
                holders = paper_repo.accounts_holding(s, symbol)
            n = 0
            for account_id in holders:
                if self.exchange(account_id).settle_funding(symbol, funding_time, rate, mark) is not None:
                    n += 1
        except (SQLAlchemyError, TradingBotError, OSError) as exc:
            self.stats.errors += 1
            log.warning("funding %s at %s not settled yet: %s", symbol, funding_time, exc)
            return False, 0
        if n:
            log.info("settled %s funding at %s (rate %s) for %d paper account(s)", symbol, funding_time, rate, n)
        return True, n

    # ------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, *, poll_s: float = 0.05) -> None:
        """Subscribe and match until ``stop`` is set; Redis or database trouble is retried."""
        backoff = 0.1
        while not stop.is_set():
            pubsub = self._cache.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(TICKS_CHANNEL, PAPER_BOOK_CHANNEL)
                self.load_pending_funding()
                self._guard(self.reload, None)  # after subscribing: no change falls between the two
                backoff = 0.1
                while not stop.is_set():
                    msg = pubsub.get_message(timeout=poll_s)
                    dirty = False
                    while msg is not None:
                        if _channel(msg) == TICKS_CHANNEL:
                            self.on_tick(msg["data"])
                        else:
                            dirty = True
                        msg = pubsub.get_message(timeout=0)
                    if dirty or time.monotonic() - self._loaded_at > self.refresh_s:
                        self._guard(self.reload, None)
                    self.settle_due()
            except (RedisError, OSError) as exc:
                self.stats.errors += 1
                log.warning("paper matcher lost Redis (%s); resubscribing in %.1f s", type(exc).__name__, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with suppress(RedisError, OSError):
                    pubsub.close()


def _channel(msg: dict[str, Any]) -> str:
    ch = msg.get("channel")
    return ch.decode() if isinstance(ch, bytes) else str(ch)


class PaperMatcherThread:
    """A running matcher (a daemon thread) and what it needs; ``stop()`` ends it and disposes the pool."""

    def __init__(self, matcher: PaperMatcher, stop_event: threading.Event, thread: threading.Thread,
                 cleanup: Callable[[], None]) -> None:  # fmt: skip
        self.matcher = matcher
        self._stop = stop_event
        self.thread = thread
        self._cleanup = cleanup

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.thread.join(timeout_s)
        self._cleanup()


def start_paper_matcher(
    database_url: str, redis_url: str, *, price_source: str = "binanceusdm", refresh_s: float = 5.0
) -> PaperMatcherThread:
    """Start matching paper orders on the feed's ticks in a daemon thread of this process (``make run``,
    tests); returns the handle whose ``stop()`` ends it."""
    engine = create_db_engine(database_url, pre_ping=False)  # see on_tick: a dropped connection is retried

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    # a blocking read with a timeout longer than the poll: Cache.from_url's 250 ms suits request paths
    cache = Cache.from_url(redis_url, timeout_s=2.0)
    matcher = PaperMatcher(sessions, cache, price_source=price_source, refresh_s=refresh_s)
    stop_event = threading.Event()
    thread = threading.Thread(target=matcher.run, args=(stop_event,), name="paper-matcher", daemon=True)
    thread.start()

    def cleanup() -> None:
        cache.client.close()
        engine.dispose()

    return PaperMatcherThread(matcher, stop_event, thread, cleanup)
