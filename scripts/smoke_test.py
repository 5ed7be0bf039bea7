"""Smoke test of a deployed webhook (the main workflow runs it against staging after each deploy).

    python scripts/smoke_test.py --url https://<api>/prod --token-env SMOKE_TOKEN [--symbol BTCUSDT]

Sends one alert for a *paper* account (its token read from the environment variable named by
--token-env, never from the command line), then sends the same alert again, and checks what the
system guarantees at its door: the first answer is 202 with an execution id, the redelivery is 202
with the same id and ``"duplicate": true`` (nothing started twice), a refused token is 401, and the
public ``/health`` says ``up``. Exit status 0 when all hold, 1 otherwise (each check printed).
Standard library only, so it runs before any install.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def _call(method: str, url: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except json.JSONDecodeError:
            return exc.code, {}


def run(*, url: str, token: str, symbol: str, price: float, timeout: float = 10.0) -> list[tuple[str, bool, str]]:
    """The checks as (name, passed, detail)."""
    base = url.rstrip("/")
    alert = {"token": token, "strategy": "ema_crossover", "symbol": symbol, "action": "buy", "price": price,
             "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "interval": "60",
             "comment": "smoke test"}  # fmt: skip
    checks: list[tuple[str, bool, str]] = []
    status, first = _call("POST", f"{base}/webhook/tradingview", alert, timeout)
    checks.append(("alert accepted", status == 202 and "execution_id" in first, f"{status} {first}"))
    status, again = _call("POST", f"{base}/webhook/tradingview", alert, timeout)
    same = status == 202 and again.get("duplicate") is True and again.get("execution_id") == first.get("execution_id")
    checks.append(("redelivery de-duplicated", same, f"{status} {again}"))
    status, refused = _call("POST", f"{base}/webhook/tradingview", {**alert, "token": "x" * 32}, timeout)
    checks.append(("wrong token refused", status == 401, f"{status} {refused}"))
    status, health = _call("GET", f"{base}/health", None, timeout)
    checks.append(("health up", status == 200 and health.get("status") in ("up", "ok"), f"{status} {health}"))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the API's base URL (the webhook is <url>/webhook/tradingview)")
    parser.add_argument("--token-env", required=True, help="name of the environment variable holding the token")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--price", type=float, default=0.0, help="the alert's price (0: ask the venue's ticker)")
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"error: --token-env {args.token_env}: the variable is empty or unset", file=sys.stderr)
        return 2
    price = args.price or _market_price(args.symbol)
    checks = run(url=args.url, token=token, symbol=args.symbol, price=price)
    for name, passed, detail in checks:
        print(f"[{'ok' if passed else 'FAIL'}] {name}: {detail.replace(token, '***')}")
    return 0 if all(passed for _, passed, _ in checks) else 1


def _market_price(symbol: str) -> float:
    """Binance USD-M's public last price: the alert must be within 1 % of the market to be decided."""
    url = f"https://fapi.binance.com/fapi/v1/ticker/price?symbol={symbol}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return float(json.loads(resp.read())["price"])


if __name__ == "__main__":
    sys.exit(main())
