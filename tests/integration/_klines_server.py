"""Binance USD-M public market data on 127.0.0.1 for the history download: the venue stand-in of
_fake_exchanges.py (its ``/fapi/v1/exchangeInfo``, which ccxt loads first) plus
``GET /fapi/v1/klines`` under the endpoint's documented rules
(https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data):

* ``symbol`` and ``interval`` are mandatory; ``limit`` defaults to 500 and is at most 1500;
* bars with open time in [startTime, endTime], oldest first, at most ``limit``; without startTime
  the most recent ones;
* the last bar is the one still forming (its close time is in the future) when the range reaches now;
* each row is ``[open time, "open", "high", "low", "close", "volume", close time, "quote volume",
  trades, "taker buy base", "taker buy quote", "0"]``, numbers as strings;
* unknown symbol: HTTP 400 ``{"code": -1121, "msg": "Invalid symbol."}``.

OKX v5 public market data, for the same series (:func:`okx_klines_server`): the OKX stand-in of
_fake_exchanges.py (its ``GET /api/v5/public/instruments``, which ccxt's okx loads first, and the
private trading endpoints) plus ``GET /api/v5/market/candles`` and ``/market/history-candles`` under
OKX's documented rules (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-candlesticks
and ...-get-candlesticks-history; the pages as mirrored in rosssaunders/coincise
docs/okx/endpoints/private/get_api_v5_market_candles.md and get_api_v5_market_history_candles.md):

* ``instId`` is mandatory (50014 "Parameter instId can not be empty."); an instrument OKX does not
  list is 51001 "Instrument ID or Spread ID doesn't exist.";
* ``bar`` defaults to ``1m``; served here: 1m/3m/5m/15m/30m/1H/2H/4H and the UTC-aligned
  6Hutc/12Hutc/1Dutc (what ccxt sends for 6h and longer, okx.py ``fetch_ohlcv``); the Hong Kong
  time bars (6H, 1D ...) are refused with 51000 "Parameter bar error" (stricter than the venue);
* ``limit``: "The maximum is 300. The default is 100." on both; above 300 is refused here with 51000
  "Parameter limit error" (the documents do not say; refusing is the stricter reading);
* ``after``: records EARLIER than that ts; ``before``: records NEWER than that ts; rows come newest
  first, at most ``limit``, counted from the newest end of the range ("The latest data will be
  returned when using before individually"): a client that pages forward must bound each page
  with ``after`` (ccxt sets ``after = since + limit x bar``), not the end of its whole range;
* ``/market/candles`` "can retrieve the latest 1,440 data entries" (the forming bar first, "The
  first candlestick data may be incomplete", ``confirm`` 0); anything older is only on
  ``/market/history-candles`` (which here never serves the forming bar: only the candles page
  documents an incomplete first candle);
* each row is ``[ts, o, h, l, c, vol (contracts), volCcy (base), volCcyQuote, confirm]``, strings, in
  ``{"code": "0", "msg": "", "data": [...]}``.

The series is a deterministic function of the open time, so any range answers the same bars.
Faults: ``holes`` (open times the venue has no bar for, as after an outage), ``bad`` (open time ->
the value put in the close column, e.g. "NaN" or None), ``delay_s`` (every klines answer waits,
past the client's timeout).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.integration._fake_exchanges import SPECS, BinanceHandler, Book, OkxHandler, _okx_ok, _Server

HOUR = 3_600_000
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": HOUR, "4h": 4 * HOUR, "1d": 24 * HOUR}
MAX_LIMIT = 1500
DEFAULT_LIMIT = 500


def price_at(open_ms: int) -> float:
    """The close of the bar opening at ``open_ms``: a slow wave around 2,000."""
    return 2000.0 + 50.0 * ((open_ms // HOUR) % 97) / 97.0


@dataclass
class KlinesVenue:
    now_ms: int | None = None  # None: the wall clock
    holes: set[int] = field(default_factory=set)
    bad: dict[int, Any] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    def rows(self, interval: str, start: int | None, end: int | None, limit: int) -> list[list[Any]]:
        step = INTERVAL_MS[interval]
        now = self.now()
        forming = now // step * step
        last = min(forming, end) // step * step if end is not None else forming
        first = (-(-start // step) * step) if start is not None else last - (limit - 1) * step
        out: list[list[Any]] = []
        t = first
        while t <= last and len(out) < limit:
            if t not in self.holes:
                c = price_at(t)
                o = price_at(t - step)
                h, lo = max(o, c) + 1.0, min(o, c) - 1.0
                close: Any = self.bad.get(t, f"{c:.2f}")
                out.append([t, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", close, "12.345", t + step - 1,
                            "24690.00", 42, "6.1", "12345.00", "0"])  # fmt: skip
            t += step
        return out


class KlinesHandler(BinanceHandler):
    def _get_fapi_v1_klines(self, params: dict[str, str]) -> None:
        venue: KlinesVenue = self.server.venue  # type: ignore[attr-defined]
        with venue.lock:
            venue.requests.append(dict(params))
        if "symbol" not in params or "interval" not in params:
            self._send(400, {"code": -1102, "msg": "Mandatory parameter was not sent, was empty/null, or malformed."})
            return
        if params["symbol"].removesuffix("USDT") not in SPECS:
            self._send(400, {"code": -1121, "msg": "Invalid symbol."})
            return
        if params["interval"] not in INTERVAL_MS:
            self._send(400, {"code": -1120, "msg": "Invalid interval."})
            return
        limit = min(int(params.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        start = int(params["startTime"]) if "startTime" in params else None
        end = int(params["endTime"]) if "endTime" in params else None
        rows = venue.rows(params["interval"], start, end, limit)
        if venue.delay_s:
            time.sleep(venue.delay_s)
        self._send(200, rows)


def klines_server(venue: KlinesVenue) -> _Server:
    server = _Server(KlinesHandler, Book())
    server.httpd.venue = venue  # type: ignore[attr-defined]
    return server


# ====================================================================== OKX v5

OKX_BARS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1H": HOUR,
            "2H": 2 * HOUR, "4H": 4 * HOUR, "6Hutc": 6 * HOUR, "12Hutc": 12 * HOUR, "1Dutc": 24 * HOUR}  # fmt: skip
OKX_MAX_LIMIT = 300
OKX_DEFAULT_LIMIT = 100
OKX_RECENT = 1440  # /market/candles: "the latest 1,440 data entries"


def _okx_error(code: str, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": []}


class OkxKlinesHandler(OkxHandler):
    def _dispatch(self, method: str) -> None:
        # market data is public on OKX (no signature, no demo header): answered here; the rest is the
        # trading stand-in's
        parts = urlsplit(self.path)
        if method == "GET" and parts.path in ("/api/v5/market/candles", "/api/v5/market/history-candles"):
            with self.book.lock:
                self.book.request_log.append((method, parts.path))
            self._candles(dict(parse_qsl(parts.query)), parts.path.rsplit("/", 1)[1])
            return
        super()._dispatch(method)

    def _candles(self, params: dict[str, str], endpoint: str) -> None:
        venue: KlinesVenue = self.server.venue  # type: ignore[attr-defined]
        with venue.lock:
            venue.requests.append({"endpoint": endpoint, **params})
        inst = params.get("instId", "")
        if not inst:
            self._send(200, _okx_error("50014", "Parameter instId can not be empty."))
            return
        if self._spec(inst) is None:
            self._send(200, _okx_error("51001", "Instrument ID or Spread ID doesn't exist."))
            return
        step = OKX_BARS.get(params.get("bar", "1m"))
        if step is None:
            self._send(200, _okx_error("51000", "Parameter bar error"))
            return
        try:
            limit = int(params.get("limit", OKX_DEFAULT_LIMIT))
            after = int(params["after"]) if "after" in params else None
            before = int(params["before"]) if "before" in params else None
        except ValueError:
            self._send(200, _okx_error("51000", "Parameter limit error"))
            return
        if not 0 < limit <= OKX_MAX_LIMIT:
            self._send(200, _okx_error("51000", "Parameter limit error"))
            return
        forming = venue.now() // step * step
        newest = forming if endpoint == "candles" else forming - step
        oldest = forming - (OKX_RECENT - 1) * step if endpoint == "candles" else 0
        if after is not None:
            newest = min(newest, (after - 1) // step * step)  # ts < after
        if before is not None:
            oldest = max(oldest, (before // step + 1) * step)  # ts > before
        data: list[list[Any]] = []
        spec = self._spec(inst)
        assert spec is not None
        t = newest
        while t >= oldest and len(data) < limit:  # newest first, counted from the newest end
            if t not in venue.holes:
                c, o = price_at(t), price_at(t - step)
                h, lo = max(o, c) + 1.0, min(o, c) - 1.0
                close: Any = venue.bad.get(t, f"{c:.2f}")
                base_vol = 12.345
                data.append([str(t), f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", close,
                             f"{base_vol / float(spec.ct_val):.2f}", f"{base_vol}", f"{base_vol * c:.2f}",
                             "0" if t == forming else "1"])  # fmt: skip
            t -= step
        if venue.delay_s:
            time.sleep(venue.delay_s)
        self._send(200, _okx_ok(data))  # type: ignore[arg-type]  # OKX rows are arrays, not objects


def okx_klines_server(venue: KlinesVenue, book: Book | None = None) -> _Server:
    """OKX's instruments, candles and history candles for ``venue``'s series (and, on the same host,
    the private endpoints of the OKX stand-in, for ``book``)."""
    server = _Server(OkxKlinesHandler, book or Book())
    server.httpd.venue = venue  # type: ignore[attr-defined]
    return server
