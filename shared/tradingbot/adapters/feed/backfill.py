"""Missed candles over REST: Binance ``/fapi/v1/klines`` and OKX ``/api/v5/market/history-candles``.

Both return closed bars only for ranges that end before the bar now forming, which is the only
range the service asks for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp

from tradingbot.adapters.feed.messages import BINANCE, OKX, TIMEFRAME_MS, Candle, binance_id, okx_bar, okx_id
from tradingbot.errors import DependencyUnavailable, PermanentError, TradingBotError

BINANCE_PAGE = 1500  # the endpoint's maximum limit
OKX_PAGE = 100  # history-candles' maximum limit


class BackfillError(TradingBotError, RuntimeError):
    """The REST call failed or answered something unexpected: the family the service catches (it
    retries the range later either way). Only its two leaves are raised."""


class BackfillAnswerError(BackfillError, PermanentError):
    """The venue answered, but not with candles we can use (4xx, an error body, a malformed row)."""


class BackfillUnavailable(BackfillError, DependencyUnavailable):  # noqa: N818 - reads as the state it reports
    """Timed out, connection failed, or the venue said "not now" (408, 418/429 rate limit, 5xx)."""


# "Not now" answers, worth retrying: Binance's 408 (timed out waiting for the backend), 429 (rate
# limit) and 418 (IP banned for ignoring 429s), and 5xx (its side; "HTTP Return Codes" in
# https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info); OKX's
# 50011 "Rate limit reached" comes as HTTP 429 (https://www.okx.com/docs-v5/en/#error-code).
_RETRY_STATUSES = frozenset({408, 418, 429})


async def _get_json(session: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Any:
    """The one place aiohttp's errors become the tree's: timeouts and connection errors are
    transient, and so are the statuses that mean "not now"."""
    try:
        async with session.get(url, params=params) as resp:
            if resp.status != 200:
                retry = resp.status in _RETRY_STATUSES or resp.status >= 500
                error = BackfillUnavailable if retry else BackfillAnswerError
                raise error(f"{url} answered {resp.status}: {(await resp.text())[:200]}")
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BackfillUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # a 200 whose body is not JSON
        raise BackfillAnswerError(f"{url}: not JSON: {exc}") from exc


async def fetch_binance(
    session: aiohttp.ClientSession, rest_url: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> list[Candle]:
    """Closed bars with open time in [start_ms, end_ms], oldest first."""
    out: list[Candle] = []
    url = rest_url.rstrip("/") + "/fapi/v1/klines"
    cursor = start_ms
    while cursor <= end_ms:
        params = {
            "symbol": binance_id(symbol),
            "interval": timeframe,
            "startTime": str(cursor),
            "endTime": str(end_ms),
            "limit": str(BINANCE_PAGE),
        }
        rows = await _get_json(session, url, params)
        if not isinstance(rows, list):
            raise BackfillAnswerError(f"{url}: expected a list, got {type(rows).__name__}")
        page = [_binance_row(BINANCE, symbol, timeframe, r) for r in rows if start_ms <= int(r[0]) <= end_ms]
        out.extend(page)
        if len(rows) < BINANCE_PAGE or not page:
            break
        cursor = page[-1].open_ms + TIMEFRAME_MS[timeframe]
    return out


def _binance_row(exchange: str, symbol: str, timeframe: str, r: Any) -> Candle:
    try:
        return Candle(
            exchange, symbol, timeframe, int(r[0]),
            float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), True, 0,
        )  # fmt: skip
    except (IndexError, TypeError, ValueError) as exc:
        raise BackfillAnswerError(f"bad kline row {str(r)[:80]}") from exc


async def fetch_okx(
    session: aiohttp.ClientSession, rest_url: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> list[Candle]:
    """Closed bars with open time in [start_ms, end_ms], oldest first (OKX pages newest first)."""
    url = rest_url.rstrip("/") + "/api/v5/market/history-candles"
    out: list[Candle] = []
    after = end_ms + 1  # OKX: records older than 'after'
    while after > start_ms:
        params = {"instId": okx_id(symbol), "bar": okx_bar(timeframe), "after": str(after), "limit": str(OKX_PAGE)}
        doc = await _get_json(session, url, params)
        if not isinstance(doc, dict) or str(doc.get("code")) != "0":
            raise BackfillAnswerError(f"{url}: {str(doc)[:200]}")
        rows = doc.get("data") or []
        page = [_okx_row(symbol, timeframe, r) for r in rows]
        out.extend(c for c in page if start_ms <= c.open_ms <= end_ms)
        if len(rows) < OKX_PAGE or not page:
            break
        after = min(c.open_ms for c in page)
    out.sort(key=lambda c: c.open_ms)
    return out


def _okx_row(symbol: str, timeframe: str, r: Any) -> Candle:
    candle = _binance_row(OKX, symbol, timeframe, r)  # same leading [ts, o, h, l, c, vol] layout
    if len(r) > 8 and str(r[8]) != "1":
        return replace(candle, closed=False)  # not used by the service (it asks for closed ranges only)
    return candle


async def fetch(
    session: aiohttp.ClientSession,
    exchange: str,
    rest_url: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
) -> list[Candle]:
    if exchange == BINANCE:
        return await fetch_binance(session, rest_url, symbol, timeframe, start_ms, end_ms)
    if exchange == OKX:
        return await fetch_okx(session, rest_url, symbol, timeframe, start_ms, end_ms)
    raise BackfillAnswerError(f"no REST backfill for {exchange!r}")
