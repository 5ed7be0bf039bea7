"""`tradingbot serve` (what `make run` starts) as a real process: it prints a working curl command,
trades on the live feed when the venue answers and on the labelled offline replay when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import Engine, select

from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Decision, Order

from ._feed_server import FakeBinance, kline_frame_row, mark_frame, trade_frame
from ._live_market import series


class Serve:
    def __init__(self, proc: subprocess.Popen[str], printed: str) -> None:
        self.proc, self.printed = proc, printed
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", printed)
        body = re.search(r"-d '(\{.*\})'", printed)
        assert url and body, printed
        self.url, self.alert = url.group(1), json.loads(body.group(1))

    def get(self, path: str) -> dict[str, Any]:
        # the detailed /health is for operators (public: up or down only): the demo operator's token
        token = re.search(r"#token=(\S+)", self.printed)
        headers = {"Authorization": f"Bearer {token.group(1)}"} if token else {}
        req = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def send(self, alert: dict[str, Any]) -> str:
        req = urllib.request.Request(self.url + "/webhook/tradingview", data=json.dumps(alert).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
            return str(json.loads(resp.read())["execution_id"])


def decided(db: Engine, execution_id: str, timeout_s: float = 60) -> Decision:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope(db) as s:
            d = s.scalars(select(Decision).where(Decision.execution_name == execution_id)).one_or_none()
            s.expunge_all()
        if d is not None and "_execution" in (d.stages or {}):
            return d
        time.sleep(0.2)
    raise AssertionError(f"no recorded decision for {execution_id}")


@contextlib.contextmanager
def serve(tmp_path: Path, env: dict[str, str]) -> Iterator[Serve]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradingbot.entrypoints.cli", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "curl -s -X POST" in line or not line:
                break
        yield Serve(proc, "".join(lines))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("serve did not stop on SIGINT") from None


def base_env(servers: Servers, **extra: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url, COLUMNS="400")
    for var in ("FEED_SYMBOLS", "FEED_EXCHANGES", "LOCAL_MARKET", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(var, None)
    return env | extra


def test_venue_unreachable_runs_the_labelled_offline_replay_and_an_alert_reaches_a_paper_order(
    servers: Servers, db: Engine, tmp_path: Path, closed_port: int
) -> None:
    dead = f"127.0.0.1:{closed_port}"  # nothing listens: the venue cannot be reached
    env = base_env(servers, FEED_BINANCE_REST_URL=f"http://{dead}", FEED_BINANCE_WS_URL=f"ws://{dead}")
    with serve(tmp_path, env) as app:
        assert "OFFLINE REPLAY" in app.printed and f"venue unreachable: binanceusdm at http://{dead}" in app.printed
        with urllib.request.urlopen(app.url + "/docs", timeout=10) as resp:
            assert resp.status == 200 and b"swagger" in resp.read().lower()
        # the operator's cockpit on the same server (issue 17): the printed dashboard token is the demo
        # operator's, who owns the demo account
        assert app.get("/api/me") == {"operator": "demo", "accounts": ["demo"]}
        with urllib.request.urlopen(app.url + "/dashboard", timeout=10) as resp:
            assert resp.status == 200 and b"TradingBot AI" in resp.read()
        health = app.get("/health")
        assert health["status"] == "ok" and health["market"]["mode"] == "offline replay", health
        assert health["market"]["live"] is False
        assert health["market"]["symbols"] == ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]

        decision = decided(db, app.send(app.alert))
        action = app.alert["action"]
        assert decision.final_action == action, decision.rejection_reason
        meta = decision.stages["_execution"]
        assert meta["status"] == "SUCCEEDED"
        assert meta["market"]["mode"] == "offline replay" and "venue unreachable" in meta["market"]["reason"]
        with session_scope(db) as s:
            order = s.scalars(select(Order).where(Order.type == "market")).one()
            assert order.status == "filled"
        # the replayed price is the one the alert was priced at (within the bar's path), not a pinned one
        assert decision.stages["execution"]["status"] == "filled"

        listed = subprocess.run(
            [sys.executable, "-m", "tradingbot.entrypoints.cli", "executions", "list"],
            check=False, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if decision.execution_name[:20] in line)
        assert "filled" in row and "offline replay" in row, listed.stdout
        shown = subprocess.run(
            [sys.executable, "-m", "tradingbot.entrypoints.cli", "executions", "show", str(decision.id)],
            check=False, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert "market: offline replay" in shown.stdout, shown.stdout
    assert (tmp_path / "demo-webhook-token").stat().st_mode & 0o077 == 0  # the token file is private


class StandInVenue:
    """The local Binance USD-M stand-in (streams + REST klines) in a background loop, streaming
    BTCUSDT's forming bar, trades and mark price: the venue, for a `serve` process's own feed."""

    def __init__(self) -> None:
        self.rows = series("BTC")
        self.price = round(self.rows[-1][4] + 12.3, 1)  # not the packaged candles' last close: the feed's own
        self.fake: FakeBinance | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _script(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        with contextlib.suppress(ConnectionError):
            while not ws.closed:
                now = int(time.time() * 1000)
                last = self.rows[-1]
                await ws.send_str(kline_frame_row(last, "1h", closed=False, symbol="BTCUSDT", event_ms=now))
                await ws.send_str(trade_frame(repr(self.price), now))
                await ws.send_str(mark_frame(repr(self.price), "0.0001", now))
                await asyncio.sleep(0.2)

    def _klines(self, symbol: str, interval: str) -> list[list[float]]:
        return self.rows if symbol == "BTCUSDT" and interval == "1h" else []

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.fake = FakeBinance([self._script], lambda: [], klines=self._klines, listed=("BTC", "ETH", "SOL"))
        await self.fake.start()
        self._ready.set()
        await self._stop.wait()
        await self.fake.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())

    def __enter__(self) -> StandInVenue:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def venue() -> Iterator[StandInVenue]:
    with StandInVenue() as v:
        yield v


def test_reachable_venue_runs_the_live_feed_and_says_so(
    servers: Servers, db: Engine, tmp_path: Path, venue: StandInVenue
) -> None:
    assert venue.fake is not None
    env = base_env(
        servers, FEED_BINANCE_REST_URL=venue.fake.rest_url, FEED_BINANCE_WS_URL=venue.fake.ws_url,
        FEED_SYMBOLS="BTC/USDT:USDT", FEED_TIMEFRAMES="1h",
    )  # fmt: skip
    with serve(tmp_path, env) as app:
        assert "market:      live feed from binanceusdm (BTC/USDT:USDT; 1h)" in app.printed, app.printed
        assert "OFFLINE" not in app.printed
        # the sample alert is priced at the stand-in's streamed price: serve's own feed wrote it
        assert app.alert["price"] == pytest.approx(venue.price)
        health = app.get("/health")
        assert health["market"]["mode"] == "live" and health["market"]["live"] is True, health
        deadline = time.monotonic() + 15
        while health["market"].get("feed") != "ok" and time.monotonic() < deadline:
            time.sleep(0.5)
            health = app.get("/health")
        assert health["market"]["feed"] == "ok", health
        assert venue.fake.connections >= 1 and "btcusdt@kline_1h" in venue.fake.stream_queries[0]
        decision = decided(db, app.send(app.alert))
        assert decision.stages["_execution"]["market"]["mode"] == "live"
