"""OKX market data through the real ccxt ``okx`` client against the local OKX stand-in
(tests/integration/_klines_server.py ``okx_klines_server``: instruments, candles, history candles
under OKX's documented paging rules): the history download (function and `tradingbot data
download --exchange okx`), and a cold candle cache of an OKX account backfilled from OKX's candles
into the feed's Redis key, the way every pipeline stage reads it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from typer.testing import CliRunner

from tests.integration._klines_server import HOUR, OKX_MAX_LIMIT, KlinesVenue, okx_klines_server, price_at
from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.store import candles_key
from tradingbot.adapters.history import HistoryKey, HistoryStore, ccxt_client, download
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.alert import AlertContent
from tradingbot.pipeline.common import stage_candles
from tradingbot.pipeline.runtime import Runtime

UTC = dt.UTC
SINCE = dt.datetime(2023, 1, 1, tzinfo=UTC)
NOW = int(dt.datetime(2023, 4, 1, 10, 30, tzinfo=UTC).timestamp() * 1000)  # the 10:00 bar is forming
T0 = int(SINCE.timestamp() * 1000)
CLOSED = (NOW // HOUR * HOUR - T0) // HOUR  # 2170 closed bars from SINCE up to 09:00
KEY = HistoryKey.parse("okx", "ETHUSDT", "1h")
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def venue() -> KlinesVenue:
    return KlinesVenue(now_ms=NOW)


@pytest.fixture
def url(venue: KlinesVenue) -> Iterator[str]:
    with okx_klines_server(venue) as server:
        yield server.url


def _candle_requests(venue: KlinesVenue) -> list[dict[str, str]]:
    return [r for r in venue.requests if r.get("endpoint") in ("candles", "history-candles")]


def _get(url: str, path: str, **params: str | int) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{url}/api/v5/market/{path}", params=params, timeout=5).json()
    return answer


def test_the_stand_in_pages_from_the_newest_end_as_okx_documents(venue: KlinesVenue, url: str) -> None:
    # "after": records earlier than ts; "before": newer; newest first, at most limit (default 100)
    got = _get(url, "history-candles", instId="ETH-USDT-SWAP", bar="1H", before=T0 - 1, after=NOW)
    assert got["code"] == "0" and len(got["data"]) == 100
    opens = [int(r[0]) for r in got["data"]]
    assert opens[0] == NOW // HOUR * HOUR - HOUR and opens == sorted(opens, reverse=True)  # newest closed first
    recent = _get(url, "candles", instId="ETH-USDT-SWAP", bar="1H", before=T0 - 1)
    assert int(recent["data"][0][0]) == NOW // HOUR * HOUR and recent["data"][0][-1] == "0"  # the forming bar
    assert _get(url, "candles", instId="ETH-USDT-SWAP", bar="1H", limit=301)["code"] == "51000"
    assert _get(url, "candles", instId="XRP-USDT-SWAP")["code"] == "51001"


def test_download_pages_okx_by_300_bar_windows_and_stores_closed_bars(
    venue: KlinesVenue, url: str, tmp_path: Path
) -> None:
    store = HistoryStore(tmp_path)
    report = download(KEY, SINCE, store=store, client=ccxt_client("okx", url, 5), now_ms=lambda: NOW)
    pages = _candle_requests(venue)
    # 2170.5 hours from SINCE to now: 8 windows of at most 300 bars, each bounded by its own "after"
    assert report.requests == len(pages) == 8
    assert all(p["endpoint"] == "history-candles" for p in pages)  # older than the latest 1,440 bars
    assert all(int(p["limit"]) == OKX_MAX_LIMIT and p["instId"] == "ETH-USDT-SWAP" and p["bar"] == "1H"
               for p in pages)  # fmt: skip
    assert [int(p["before"]) + 1 for p in pages] == [T0 + i * 300 * HOUR for i in range(8)]
    assert all(int(p["after"]) - int(p["before"]) <= 300 * HOUR for p in pages)
    frame = store.read(KEY)
    assert frame is not None and (tmp_path / "okx" / "ETHUSDT-1h.parquet").exists()
    assert len(frame) == report.total == report.added == CLOSED
    assert frame.index[0] == pd.Timestamp(SINCE) and frame.index[-1] == pd.Timestamp("2023-04-01T09:00Z")
    assert (frame.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()
    assert frame["close"].iloc[-1] == pytest.approx(price_at(NOW // HOUR * HOUR - HOUR), abs=0.01)
    # ccxt takes OKX's base-currency volume (volCcy) for a swap, not the contract count
    assert frame["volume"].iloc[-1] == pytest.approx(12.345)

    later = NOW + 24 * HOUR
    venue.now_ms = later
    again = download(KEY, SINCE, store=store, client=ccxt_client("okx", url, 5), now_ms=lambda: later)
    assert again.added == 24 and again.total == CLOSED + 24 and again.resumed_from == pd.Timestamp("2023-04-01T09:00Z")


def test_cli_data_download_from_okx(
    venue: KlinesVenue, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradingbot.entrypoints.cli import app

    venue.now_ms = None  # the command uses the wall clock; so does ccxt's choice of endpoint
    monkeypatch.setenv("FEED_OKX_REST_URL", url)
    monkeypatch.setenv("HISTORY_URI", str(tmp_path))
    since = (dt.datetime.now(UTC) - dt.timedelta(hours=2000)).strftime("%Y-%m-%dT%H:00Z")
    runner = CliRunner()
    args = ["data", "download", "--exchange", "okx", "--symbol", "ETHUSDT", "--timeframe", "1h"]
    first = runner.invoke(app, [*args, "--since", since])
    assert first.exit_code == 0, first.output
    assert "2,000 new bars" in first.stdout or "1,999 new bars" in first.stdout, first.stdout
    endpoints = [p["endpoint"] for p in _candle_requests(venue)]
    # bars older than the latest 1,440 come from history-candles, the rest from candles (ccxt's switch)
    assert endpoints[0] == "history-candles" and endpoints[-1] == "candles", endpoints
    stored = pd.read_parquet(tmp_path / "okx" / "ETHUSDT-1h.parquet")
    assert len(stored) in (1999, 2000) and stored["close"].notna().all()
    again = runner.invoke(app, [*args, "--since", since])
    assert again.exit_code == 0 and "resumed after" in again.stdout, again.output
    unlisted = runner.invoke(app, ["data", "download", "--exchange", "okx", "--symbol", "XRPUSDT", "--since", since])
    assert unlisted.exit_code != 0 and "XRP" in unlisted.output, unlisted.output
    assert not (tmp_path / "okx" / "XRPUSDT-1h.parquet").exists()


def test_a_cold_cache_of_an_okx_account_is_backfilled_from_okx_candles(runtime: Runtime, cache: Cache) -> None:
    venue = KlinesVenue()  # the wall clock: the bar forming now is the newest
    with okx_klines_server(venue) as server:
        cfg = runtime.config
        runtime.config = cfg.model_copy(update={"feed": cfg.feed.model_copy(update={"okx_rest_url": server.url})})
        runtime.live_candles = None
        with session_scope(runtime.engine()) as s:
            account, _ = repo.create_account(s, name="okx-live", exchange="okx", testnet=True)
            account_id = account.id
        assert cache.get_candles("okx", "ETH/USDT:USDT", "1h") is None  # cold: no feed for OKX
        alert = AlertContent(strategy="bollinger", symbol="ETHUSDT", action="long", price=2000,
                             time=dt.datetime.now(UTC))  # fmt: skip
        window = stage_candles(runtime, alert, account_id)
        now = venue.now()
        forming = now // HOUR * HOUR
        assert (window.venue, window.symbol, window.timeframe, window.source) == ("okx", "ETH/USDT:USDT", "1h",
                                                                                   "backfill")  # fmt: skip
        assert window.as_of_ms == forming - HOUR  # the last closed bar the OKX stand-in served
        bars = runtime.settings.candles_for_signals
        assert len(window.frame) == min(bars, 499)
        assert window.frame["close"].iloc[-1] == pytest.approx(price_at(forming - HOUR), abs=0.01)
        pages = _candle_requests(venue)
        assert pages and all(p["endpoint"] == "candles" and int(p["limit"]) <= OKX_MAX_LIMIT for p in pages)
        assert {p["instId"] for p in pages} == {"ETH-USDT-SWAP"}
        # stored in the feed's own key, forming bar included, so the alert's other stages read Redis
        stored: list[list[Any]] = json.loads(cache.client.get(candles_key("okx", "ETH/USDT:USDT", "1h")) or b"[]")
        assert stored[-1][0] == forming and stored[-2][0] == forming - HOUR
        n = len(venue.requests)
        again = stage_candles(runtime, alert, account_id)
        assert again.source == "feed" and again.as_of_ms == window.as_of_ms and len(venue.requests) == n
