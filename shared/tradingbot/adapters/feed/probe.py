"""Can the feed reach its venues? One public REST request each, before ``make run`` chooses
between the live feed and the labelled offline replay.

The request is the one the feed's backfill makes, for one bar, so a stand-in that serves the feed
answers it too: Binance USD-M ``GET /fapi/v1/klines?symbol=..&interval=1m&limit=1``
(https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data)
and OKX ``GET /api/v5/market/history-candles?instId=..&bar=1m&limit=1``
(https://www.okx.com/docs-v5/en/#public-data-rest-api-get-candlesticks-history). Any answer in the
venue's format counts as reachable; a refused connection, a timeout, a DNS failure or an answer that
is not the venue's (a captive portal, a proxy's error page) does not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from tradingbot.adapters.feed.messages import OKX, binance_id, okx_id


@dataclass(frozen=True)
class Reachability:
    exchange: str
    url: str
    ok: bool
    reason: str  # "answered" or why not


def probe(exchange: str, rest_url: str, symbol: str = "BTC/USDT:USDT", timeout_s: float = 3.0) -> Reachability:
    base = rest_url.rstrip("/")
    if exchange == OKX:
        url = f"{base}/api/v5/market/history-candles?" + urllib.parse.urlencode(
            {"instId": okx_id(symbol), "bar": "1m", "limit": "1"}
        )
    else:
        url = f"{base}/fapi/v1/klines?" + urllib.parse.urlencode(
            {"symbol": binance_id(symbol), "interval": "1m", "limit": "1"}
        )
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = json.loads(resp.read(1 << 16) or b"null")
    except urllib.error.HTTPError as exc:  # the venue answered, with an error: it is there
        return Reachability(exchange, url, True, f"answered HTTP {exc.code}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reachability(exchange, url, False, f"{type(exc).__name__}: {reason}")
    except ValueError:
        return Reachability(exchange, url, False, "the answer is not the venue's JSON")
    shaped = isinstance(body, dict) and "data" in body if exchange == OKX else isinstance(body, list)
    return Reachability(exchange, url, shaped, "answered" if shaped else "the answer is not the venue's klines")
