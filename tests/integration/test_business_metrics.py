"""Business metrics counted where they are decided (issue 17; tradingbot.adapters.metrics), read back
from Powertools' own metric set (shared by every ``Metrics`` in the process, which the Lambda edge
flushes) or from the EMF line the feed prints: alerts accepted and refused by reason through the
real webhook intake, realized PnL through the accounting sync on a paper account."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from sqlalchemy import select

from tests.integration.test_pipeline import alert_body
from tradingbot.adapters import metrics as business_metrics
from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.service import FeedService
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Position
from tradingbot.domain.positions import TradeIntent
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.pipeline.accounting import sync_account
from tradingbot.pipeline.execute import _factory
from tradingbot.pipeline.order_service import execute_intent, load_account
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.webhook import receive_alert

BTC = "BTC/USDT:USDT"


@pytest.fixture
def emf(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    """Metrics on (as on Lambda), the process's metric set empty. The Lambda edge decides at import
    whether to wrap a handler in ``log_metrics``: the handlers are imported first, with metrics off,
    so this test does not leave wrapped handlers behind for the rest of the session."""
    import importlib
    import pkgutil

    from tradingbot.entrypoints import lambdas

    for mod in pkgutil.iter_modules(lambdas.__path__):
        if mod.name not in ("backtest",):  # the image-only worker (pandas, numba) is not run here
            importlib.import_module(f"tradingbot.entrypoints.lambdas.{mod.name}")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    m = Metrics(namespace="TradingBot", service="tradingbot")
    m.clear_metrics()
    yield m
    m.clear_metrics()


def _values(m: Metrics, name: str) -> list[float]:
    """What was added under ``name`` and is still in the process's set (not flushed yet)."""
    return [float(v) for v in (m.metric_set.get(name) or {}).get("Value", [])]


def test_alerts_accepted_and_refused_by_reason(emf: Metrics, local: LocalStepFunctions, account: tuple[int, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    _, token = account
    rt = local.runtime
    wrong = receive_alert(rt, alert_body("tbwh_" + "A" * len(token[5:])), "52.89.214.238")
    garbled = receive_alert(rt, b"{not json", "52.89.214.238")
    assert (wrong.status, garbled.status) == (401, 400)
    stale = receive_alert(rt, alert_body(token, time="2020-01-01T00:00:00Z"), "52.89.214.238")  # authenticated
    assert stale.status == 422
    body = alert_body(token)
    first = receive_alert(rt, body, "52.89.214.238")
    again = receive_alert(rt, body, "52.89.214.238")  # TradingView's retry: not a second acceptance
    assert first.status == 202 and again.status == 202 and again.body["duplicate"] is True
    wrong_name = "AlertsRefused" + business_metrics.camel(str(wrong.body["error"]))
    garbled_name = "AlertsRefused" + business_metrics.camel(str(garbled.body["error"]))
    assert wrong_name != garbled_name
    out = capsys.readouterr().out
    stale_name = "AlertsRefused" + business_metrics.camel(str(stale.body["error"]))
    names = ("AlertsAccepted", "AlertsRefused", wrong_name, garbled_name, stale_name)
    seen = {name: _values(emf, name) for name in names}
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            for name in seen:
                seen[name] += [float(v) for v in json.loads(line).get(name, [])]
    assert seen["AlertsAccepted"] == [1.0]
    assert seen[wrong_name] == [1.0] and seen[garbled_name] == [1.0]
    assert seen[stale_name] == [1.0]  # an authenticated alert's refusal: its row and its count
    assert sum(seen["AlertsRefused"]) == 3  # the two tallied before authentication and the stale one


def test_metrics_off_outside_lambda_add_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    m = Metrics(namespace="TradingBot", service="tradingbot")
    m.clear_metrics()
    business_metrics.alert_refused("wrong_token")
    assert business_metrics.flush_feed(lags_ms=[5.0], reconnects=1, messages=3) == {}
    assert m.metric_set == {}


def test_realized_pnl_is_the_change_the_accounting_sync_writes(emf: Metrics, runtime: Runtime, cache: Cache,
                                                                account: tuple[int, str]) -> None:  # fmt: skip
    account_id, _ = account
    with session_scope(runtime.engine()) as s:
        repo.set_limits(s, "test", max_leverage=10, max_position_usd=Decimal(100000))
    sessions, exchanges = _factory(runtime)
    for action, price in (("long", 50000), ("close", 52000)):
        cache.put_price("binanceusdm", BTC, Decimal(price))
        intent = TradeIntent(decision_id=f"m-{action}-{dt.datetime.now().timestamp()}", symbol="BTCUSDT",
                             action=action, reference_price=Decimal(price), quantity=Decimal("0.1"),
                             leverage=2)  # type: ignore[arg-type]  # fmt: skip
        assert execute_intent(sessions, cache, account_id, intent, exchanges).status == "filled"
    settings = load_account(sessions, account_id)
    assert settings is not None
    emf.clear_metrics()
    report = sync_account(sessions, exchanges(settings), account_id)
    assert report.errors == []
    with session_scope(runtime.engine()) as s:
        [pos] = s.scalars(select(Position).where(Position.account_id == account_id)).all()
        stored = Decimal(pos.realized_pnl)
    assert pos.closed_at is not None and stored > 150  # bought 0.1 near 50,000, sold near 52,000, less fees
    assert _values(emf, "RealizedPnlUsd") == [pytest.approx(float(stored))]
    sync_account(sessions, exchanges(settings), account_id)  # nothing changed: nothing counted again
    assert _values(emf, "RealizedPnlUsd") == [pytest.approx(float(stored))]


def test_feed_flush_prints_one_emf_document(emf: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    out = business_metrics.flush_feed(lags_ms=[float(x) for x in range(1, 101)], reconnects=2, messages=500)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    doc: dict[str, Any] = json.loads(line)
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "TradingBot" and ["service"] in directive["Dimensions"]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["FeedLagP99Ms"] == "Milliseconds" and names["FeedReconnects"] == "Count"
    assert (doc["FeedLagP50Ms"], doc["FeedLagP99Ms"], doc["FeedLagMaxMs"]) == ([51.0], [100.0], [100.0])
    assert doc["FeedReconnects"] == [2.0] and doc["FeedMessages"] == [500.0] and out["FeedReconnects"] == 2.0
    assert emf.metric_set == {}  # flushed


def test_the_feed_emits_its_lag_and_reconnects_as_emf(
    emf: Metrics, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real feed against the local Binance look-alike: one connection dropped mid-stream, the
    service reconnects; every ``metrics_flush_s`` it prints one EMF document whose counts are the
    window's, so over the run they add up to the service's own counters."""
    from aiohttp import web

    from tests.integration._feed_server import FakeBinance, bar, drop, trade_frame
    from tests.integration.test_feed_service import _fast, _now_ms, _until, _with_service

    async def first(ws: web.WebSocketResponse, request: web.Request) -> None:
        for _ in range(5):
            await ws.send_str(trade_frame("100.5", _now_ms()))
            await asyncio.sleep(0.05)
        drop(request)

    async def second(ws: web.WebSocketResponse, request: web.Request) -> None:
        while not ws.closed:
            await ws.send_str(trade_frame("101.5", _now_ms()))
            await asyncio.sleep(0.05)

    fake = FakeBinance([first, second], lambda: [bar(i) for i in range(-3, 0)])

    async def body(service: FeedService, client: Any) -> None:
        async def reconnected_and_flushed() -> bool:
            return service.metrics.reconnects >= 1 and service.metrics.messages >= 15

        await _until(reconnected_and_flushed)
        await asyncio.sleep(0.5)  # at least one more flush after the reconnect

    service = asyncio.run(_with_service(servers, fake, _fast(metrics_flush_s=0.2, warmup=False), body))
    service.flush_metrics()  # the remainder of the last window
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    feed_docs = [d for d in docs if "FeedMessages" in d]
    assert len(feed_docs) >= 3
    assert sum(d["FeedReconnects"][0] for d in feed_docs) == service.metrics.reconnects >= 1
    assert sum(d["FeedMessages"][0] for d in feed_docs) == service.metrics.messages
    lags = [d["FeedLagP99Ms"][0] for d in feed_docs if "FeedLagP99Ms" in d]
    assert lags and all(0 <= lag < 5_000 for lag in lags)  # event time -> Redis write, on one machine
    for d in feed_docs:
        assert d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TradingBot" and d["service"] == "tradingbot"
