"""A local Binance USDT-M look-alike on 127.0.0.1: combined-stream WebSocket (``/stream``) and
REST klines (``/fapi/v1/klines``) for the feed's integration tests.

Each WebSocket connection runs the next script (the last one for every later connection); a
script gets the socket and the request and sends what it likes (frames, garbage, an abrupt drop).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

T0 = 1_700_000_040_000  # a minute boundary
MINUTE = 60_000

Script = Callable[[web.WebSocketResponse, web.Request], Awaitable[None]]


def bar(i: int) -> list[float]:
    """The i-th 1m bar of a deterministic series: [open ms, o, h, l, c, v]."""
    o = 100.0 + i
    return [T0 + i * MINUTE, o, o + 2.0, o - 1.0, o + 0.5, 10.0 + i]


def kline_frame(i: int, *, closed: bool, symbol: str = "BTCUSDT", close: float | None = None, event_ms: int = 0) -> str:
    t, o, h, lo, c, v = bar(i)
    k = {
        "t": int(t), "T": int(t) + MINUTE - 1, "s": symbol, "i": "1m", "f": 1, "L": 2,
        "o": str(o), "c": str(c if close is None else close), "h": str(h), "l": str(lo), "v": str(v),
        "n": 2, "x": closed, "q": "0", "V": "0", "Q": "0", "B": "0",
    }  # fmt: skip
    data = {"e": "kline", "E": event_ms or int(t) + MINUTE - 1, "s": symbol, "k": k}
    return json.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": data})


def trade_frame(price: str, event_ms: int, symbol: str = "BTCUSDT") -> str:
    data = {"e": "aggTrade", "E": event_ms, "s": symbol, "a": 1, "p": price, "q": "1", "f": 1, "l": 1,
            "T": event_ms, "m": False}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data})


def mark_frame(mark: str, rate: str, event_ms: int, symbol: str = "BTCUSDT") -> str:
    data = {"e": "markPriceUpdate", "E": event_ms, "s": symbol, "p": mark, "i": mark, "P": mark, "r": rate,
            "T": event_ms + 3_600_000}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@markPrice@1s", "data": data})


# Binance's kline intervals in ms (the "interval" enum of
# https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data)
INTERVAL_MS = {"1m": MINUTE, "3m": 3 * MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "30m": 30 * MINUTE,
               "1h": 60 * MINUTE, "2h": 120 * MINUTE, "4h": 240 * MINUTE, "6h": 360 * MINUTE, "8h": 480 * MINUTE,
               "12h": 720 * MINUTE, "1d": 1440 * MINUTE, "3d": 3 * 1440 * MINUTE, "1w": 7 * 1440 * MINUTE}  # fmt: skip


def kline_frame_row(row: Sequence[float], interval: str, *, closed: bool, symbol: str, event_ms: int) -> str:
    """A combined-stream kline event for any row and interval (``kline_frame`` is the 1m series')."""
    t, o, h, lo, c, v = row
    k = {
        "t": int(t), "T": int(t) + INTERVAL_MS[interval] - 1, "s": symbol, "i": interval, "f": 1, "L": 2,
        "o": str(o), "c": str(c), "h": str(h), "l": str(lo), "v": str(v),
        "n": 2, "x": closed, "q": "0", "V": "0", "Q": "0", "B": "0",
    }  # fmt: skip
    data = {"e": "kline", "E": event_ms, "s": symbol, "k": k}
    return json.dumps({"stream": f"{symbol.lower()}@kline_{interval}", "data": data})


def exchange_info(bases: Sequence[str]) -> dict[str, Any]:
    """``GET /fapi/v1/exchangeInfo`` for USDT perpetuals of ``bases``: the fields ccxt's
    ``fetch_markets`` reads (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information)."""
    symbols = [
        {
            "symbol": f"{b}USDT", "pair": f"{b}USDT", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": b, "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "triggerProtect": "0.0500", "liquidationFee": "0.012500",
            "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "4529764", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
        for b in bases
    ]  # fmt: skip
    return {"timezone": "UTC", "serverTime": 0, "futuresType": "U_MARGINED", "rateLimits": [], "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols}  # fmt: skip


class FakeBinance:
    """``klines`` (symbol, interval) -> rows serves per-symbol series on any interval (else
    ``rest_bars``, the 1m BTCUSDT series); ``listed`` is what ``/fapi/v1/exchangeInfo`` lists and
    what klines answer for (others: -1121 "Invalid symbol."); ``kline_delay_s`` delays every klines
    answer (a client timeout)."""

    def __init__(
        self,
        scripts: Sequence[Script],
        rest_bars: Callable[[], list[list[float]]],
        *,
        klines: Callable[[str, str], list[list[float]]] | None = None,
        listed: Sequence[str] = ("BTC",),
        kline_delay_s: float = 0.0,
    ) -> None:
        self.scripts = list(scripts)
        self.rest_bars = rest_bars
        self.klines = klines
        self.listed = list(listed)
        self.kline_delay_s = kline_delay_s
        self.connections = 0
        self.stream_queries: list[str] = []
        self.kline_requests: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeBinance:
        app = web.Application()
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/fapi/v1/klines", self._klines)
        app.router.add_get("/fapi/v1/exchangeInfo", self._exchange_info)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.stream_queries.append(request.query.get("streams", ""))
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        await script(ws, request)
        return ws

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(exchange_info(self.listed))

    async def _klines(self, request: web.Request) -> web.Response:
        """Binance's documented klines: ``limit`` default 500, max 1500; without ``startTime`` the
        most recent bars up to ``endTime``; each row [open time, o, h, l, c, volume, close time,
        quote volume, trades, taker buy base, taker buy quote, ignore], prices as strings
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data)."""
        q = dict(request.query)
        self.kline_requests.append(q)
        if self.kline_delay_s:
            await asyncio.sleep(self.kline_delay_s)
        symbol, interval = q.get("symbol", ""), q.get("interval", "1m")
        if symbol.removesuffix("USDT") not in self.listed:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(q.get("limit", 500))
        if not 1 <= limit <= 1500:
            return web.json_response({"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."},
                                     status=400)  # fmt: skip
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        source = self.klines(symbol, interval) if self.klines is not None else self.rest_bars()
        rows: list[list[Any]] = []
        for t, o, h, lo, c, v in source:
            if start <= t <= end:
                close_ms = int(t) + INTERVAL_MS.get(interval, MINUTE) - 1
                rows.append([int(t), str(o), str(h), str(lo), str(c), str(v), close_ms, "0", 1, "0", "0", "0"])
        return web.json_response(rows[:limit] if "startTime" in q else rows[-limit:])


def drop(request: web.Request) -> None:
    """Cut the TCP connection without a close handshake, as a network failure would."""
    if request.transport is not None:
        request.transport.abort()


# ---------------------------------------------------------------- OKX v5


def okx_candle_frame(i: int, *, confirmed: bool, close: float | None = None) -> str:
    t, o, h, lo, c, v = bar(i)
    row = [str(int(t)), str(o), str(h), str(lo), str(c if close is None else close), str(v), "0", "0"]
    row.append("1" if confirmed else "0")
    return json.dumps({"arg": {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}, "data": [row]})


def okx_public_frames(price: str, ts: int) -> list[str]:
    arg = {"instId": "BTC-USDT-SWAP"}
    return [
        json.dumps({"arg": {"channel": "trades", **arg}, "data": [{**arg, "px": price, "sz": "1", "side": "buy",
                                                                  "ts": str(ts)}]}),
        json.dumps({"arg": {"channel": "mark-price", **arg}, "data": [{**arg, "markPx": price, "ts": str(ts)}]}),
        json.dumps({"arg": {"channel": "funding-rate", **arg},
                    "data": [{**arg, "fundingRate": "0.0003", "fundingTime": str(ts + 3_600_000), "ts": str(ts)}]}),
    ]  # fmt: skip


class FakeOkx:
    """OKX v5 look-alike: ``/ws/v5/public`` and ``/ws/v5/business`` (a subscribe op first, then the
    script for that endpoint's n-th connection) and ``/api/v5/market/history-candles``."""

    def __init__(self, scripts: dict[str, Sequence[Script]], rest_bars: Callable[[], list[list[float]]]) -> None:
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.rest_bars = rest_bars
        self.connections: dict[str, int] = {"public": 0, "business": 0}
        self.subscriptions: dict[str, list[Any]] = {"public": [], "business": []}
        self.history_requests: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v5"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeOkx:
        app = web.Application()
        app.router.add_get("/ws/v5/{path}", self._ws)
        app.router.add_get("/api/v5/market/history-candles", self._history)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        path = request.match_info["path"]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        op = json.loads((await ws.receive()).data)
        self.subscriptions[path].append(op)
        for a in op["args"]:
            await ws.send_str(json.dumps({"event": "subscribe", "arg": a, "connId": "x"}))
        scripts = self.scripts[path]
        script = scripts[min(self.connections[path], len(scripts) - 1)]
        self.connections[path] += 1
        await script(ws, request)
        return ws

    async def _history(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.history_requests.append(q)
        after, limit = int(q.get("after", 2**62)), int(q.get("limit", 100))
        rows = [
            [str(int(t)), str(o), str(h), str(lo), str(c), str(v), "0", "0", "1"]
            for t, o, h, lo, c, v in reversed(self.rest_bars())
            if t < after
        ]
        return web.json_response({"code": "0", "msg": "", "data": rows[:limit]})
