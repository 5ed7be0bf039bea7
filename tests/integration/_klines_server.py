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

from tests.integration._fake_exchanges import SPECS, BinanceHandler, Book, _Server

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
