"""Candles of the live market, from the market feed's Redis keys, for the pipeline's stages.

The feed (``tradingbot.adapters.feed``) keeps ``tb:ohlcv:{venue}:{symbol}:{tf}`` (schema in
``adapters/feed/store.py``): at most 500 ``[open ms, o, h, l, c, v]`` rows, oldest first, the
last one possibly still forming. :meth:`LiveCandles.window` reads that key for the alert's venue,
symbol and timeframe and answers the closed bars, or fails closed with
:class:`~tradingbot.adapters.market.MarketDataUnavailable` naming symbol, venue, timeframe and what
was wrong:

* **stale**: the last closed bar closed more than one interval plus ``grace_s`` ago (the next bar
  should have closed by then: the feed is behind or dead);
* **too short**: fewer closed bars than ``min_bars``;
* **invalid**: NaN or non-positive prices, OHLC inconsistent, duplicate or unordered open times
  (``domain.candles.validate_candles``), or a gap (a missing bar inside the window);
* **unlisted**: the venue does not list the symbol (its market list, from ccxt ``load_markets``);
* **backfill failed**: a cold key (absent) is filled over REST by ccxt's public ``fetch_ohlcv``
  (no keys) and stored in the same key (the feed's 15 s TTL, so the other stages of the same
  alert read it from Redis); a timeout or an error answer fails closed.

``fetch_ohlcv`` pages with ``since`` / ``limit`` (https://docs.ccxt.com/#/README?id=ohlcv-candlestick-charts:
"since" is the open time of the first bar, and an exchange answers at most its own page limit).
Page sizes: Binance USD-M klines allow ``limit`` up to 1500 (default 500;
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data),
but ccxt's binance ``fetch_ohlcv`` clamps to 1000 ("the time range wider than 500 candles won't work
right"), so 1000; OKX ``/market/candles`` (the latest 1,440 bars) and ``/market/history-candles``
both allow 300, default 100 (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-candlesticks),
and ccxt switches between them by ``since``, clamps to 300 and bounds each page with ``after = since +
limit x bar`` (OKX counts a page from the newest end of the range), so 300
(tests/integration/test_okx_market_data.py runs it against a stand-in with those rules).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.store import CANDLES_KEPT
from tradingbot.adapters.market import MarketDataUnavailable
from tradingbot.domain.timeframes import check_venue_timeframe, next_open_ms, timeframe_ms, unified_symbol

if TYPE_CHECKING:  # the webhook must not load pandas
    import pandas as pd

PAGE_LIMIT = {"binanceusdm": 1000, "okx": 300}
Source = Literal["feed", "backfill"]
Fetcher = Callable[[str, str, str, int, int], list[list[Any]]]  # venue, symbol, tf, since ms, limit


@dataclass(frozen=True)
class CandleWindow:
    """Closed bars of one (venue, symbol, timeframe), oldest first, and where they came from."""

    frame: pd.DataFrame
    venue: str
    symbol: str  # ccxt unified, e.g. ETH/USDT:USDT
    timeframe: str
    source: Source  # "feed": the feed's key; "backfill": the key was cold and filled over REST here
    as_of_ms: int  # OPEN time of the last closed bar (it closed one interval later)

    def describe(self) -> dict[str, Any]:
        import datetime as dt

        as_of = dt.datetime.fromtimestamp(self.as_of_ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")
        return {
            "source": self.source, "venue": self.venue, "symbol": self.symbol, "timeframe": self.timeframe,
            "as_of": as_of, "as_of_is": "open time of the last closed bar", "bars": len(self.frame),
        }  # fmt: skip


class CcxtOhlcv:
    """ccxt's public ``fetch_ohlcv`` per venue, one client per venue per process (markets loaded
    once). ``rest_urls`` points a venue at another host (the tests' local stand-ins)."""

    def __init__(self, *, timeout_s: float, rest_urls: Mapping[str, str] | None = None) -> None:
        self.timeout_ms = int(timeout_s * 1000)
        self.rest_urls = dict(rest_urls or {})
        self._clients: dict[str, Any] = {}

    def _client(self, venue: str) -> Any:
        client = self._clients.get(venue)
        if client is None:
            import ccxt

            from tradingbot.adapters.exchange.ccxt_adapter import local_urls

            options: dict[str, Any] = {"fetchCurrencies": False, "adjustForTimeDifference": False}
            if venue == "okx":
                options |= {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}
                client = ccxt.okx({"timeout": self.timeout_ms, "enableRateLimit": False, "options": options})
            else:
                options |= {"defaultType": "swap", "defaultSubType": "linear"}
                client = ccxt.binanceusdm({"timeout": self.timeout_ms, "enableRateLimit": False, "options": options})
            url = self.rest_urls.get(venue)
            if url:
                api = local_urls(venue, url)  # type: ignore[arg-type]
                client.urls["api"] = dict(api) if venue == "okx" else {**client.urls["api"], **api}
            self._clients[venue] = client
        return client

    def listed(self, venue: str, symbol: str) -> bool:
        client = self._client(venue)
        return bool(self._call(venue, symbol, lambda: symbol in client.load_markets()))

    def __call__(self, venue: str, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[list[Any]]:
        client = self._client(venue)
        rows: list[list[Any]] = self._call(
            venue, symbol, lambda: client.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=limit)
        )
        return rows

    @staticmethod
    def _call(venue: str, symbol: str, op: Callable[[], Any]) -> Any:
        import ccxt

        try:
            return op()
        except ccxt.RequestTimeout as exc:
            raise MarketDataUnavailable(f"{symbol} on {venue}: REST backfill timed out ({exc})"[:300]) from None
        except ccxt.BaseError as exc:
            raise MarketDataUnavailable(
                f"{symbol} on {venue}: REST backfill failed: {type(exc).__name__}: {exc}"[:300]
            ) from None


class LiveCandles:
    def __init__(
        self,
        cache: Callable[[], Cache],
        *,
        grace_s: float,
        fetcher: CcxtOhlcv | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._cache = cache
        self.grace_ms = int(grace_s * 1000)
        self.fetcher = fetcher
        self._now_ms = now_ms

    def window(self, venue: str, ticker: str, timeframe: str, *, bars: int, min_bars: int) -> CandleWindow:
        """The last ``bars`` closed bars (at least ``min_bars``) of ``ticker`` on ``venue``."""
        symbol = unified_symbol(ticker)
        where = f"{ticker} ({symbol}) on {venue}, {timeframe}"
        try:
            check_venue_timeframe(venue, timeframe)
        except ValueError as exc:
            raise MarketDataUnavailable(f"{where}: {exc}") from None
        now = self._now_ms()
        rows = self._cache().get_candles(venue, symbol, timeframe)
        source: Source = "feed"
        if rows is None:
            rows = self._backfill(venue, symbol, timeframe, bars, now, where)
            source = "backfill"
        end = len(rows)  # oldest first: only the tail can still be forming (order is validated below)
        while end and next_open_ms(int(rows[end - 1][0]), timeframe) > now:
            end -= 1
        closed = rows[:end]
        if not closed:
            raise MarketDataUnavailable(f"{where}: no closed bar in the {source}'s {len(rows)} candles")
        last_open = int(closed[-1][0])
        closed_at = next_open_ms(last_open, timeframe)
        late = now - closed_at
        tf_ms = timeframe_ms(timeframe)
        if late > tf_ms + self.grace_ms:
            raise MarketDataUnavailable(
                f"{where}: stale candles: the last closed bar (open {_iso(last_open)}) closed {late / 1000:.0f} s "
                f"ago, more than one interval plus {self.grace_ms / 1000:.0f} s grace (feed behind or down)"
            )
        if len(closed) < min_bars:
            raise MarketDataUnavailable(
                f"{where}: too short: {len(closed)} closed bars in the {source}, at least {min_bars} needed"
            )
        used = closed[-bars:]
        frame = _frame(used, timeframe, where)
        return CandleWindow(frame, venue, symbol, timeframe, source, last_open)

    def _backfill(self, venue: str, symbol: str, timeframe: str, bars: int, now: int, where: str) -> list[list[Any]]:
        if self.fetcher is None:
            raise MarketDataUnavailable(f"{where}: no candles in the feed's cache and no REST backfill configured")
        try:
            listed = self.fetcher.listed(venue, symbol)
        except MarketDataUnavailable as exc:
            raise MarketDataUnavailable(f"{where}: {exc}") from None
        if not listed:
            raise MarketDataUnavailable(f"{where}: {venue} does not list {symbol}")
        want = min(bars + 1, CANDLES_KEPT)  # the closed bars and the one forming
        page = PAGE_LIMIT.get(venue, 500)
        tf_ms = timeframe_ms(timeframe)
        cursor = now - want * tf_ms
        out: dict[int, list[Any]] = {}
        while True:
            try:
                got = self.fetcher(venue, symbol, timeframe, cursor, min(page, want))
            except MarketDataUnavailable as exc:
                raise MarketDataUnavailable(f"{where}: {exc}") from None
            for r in got:
                out[int(r[0])] = [int(r[0]), *r[1:6]]
            if not got or len(got) < min(page, want) or len(out) >= want:
                break
            cursor = int(got[-1][0]) + tf_ms
        rows = [out[k] for k in sorted(out)][-want:]
        if not rows:
            raise MarketDataUnavailable(f"{where}: the REST backfill answered no candles")
        self._cache().put_candles(venue, symbol, timeframe, rows)
        return rows


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _frame(rows: list[list[Any]], timeframe: str, where: str) -> pd.DataFrame:
    from tradingbot.domain.candles import CandleDataError, candles_from_rows

    try:
        frame = candles_from_rows(rows, source=where)
    except CandleDataError as exc:
        raise MarketDataUnavailable(f"invalid candles: {exc}") from None
    opens = frame.index.asi8 // 1_000_000
    if timeframe[-1] == "M":
        expected = [next_open_ms(int(t), timeframe) for t in opens[:-1]]
    else:
        expected = opens[:-1] + timeframe_ms(timeframe)
    bad = (opens[1:] != expected).nonzero()[0]
    if bad.size:
        prev, nxt = int(opens[bad[0]]), int(opens[bad[0] + 1])
        missing = max(1, round((nxt - prev) / timeframe_ms(timeframe)) - 1)
        raise MarketDataUnavailable(
            f"{where}: gap in the candles: {missing} bar(s) missing between {_iso(prev)} and {_iso(nxt)}"
        )
    return frame
