"""History download (ccxt fetch_ohlcv) against a local Binance USD-M klines stand-in, the Parquet
store (a folder, and S3 under moto), and the commands and the worker that read it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.integration._klines_server import HOUR, MAX_LIMIT, KlinesVenue, klines_server, price_at
from tradingbot.adapters.history import (
    DownloadReport,
    HistoryError,
    HistoryKey,
    HistoryStore,
    HistoryUnavailable,
    ccxt_client,
    download,
    resolve_candles,
)

UTC = dt.UTC
SINCE = dt.datetime(2023, 1, 1, tzinfo=UTC)
NOW = int(dt.datetime(2023, 4, 1, 10, 30, tzinfo=UTC).timestamp() * 1000)  # the 10:00 bar is forming
T0 = int(SINCE.timestamp() * 1000)
CLOSED = (NOW // HOUR * HOUR - T0) // HOUR  # 2170 closed bars from SINCE up to 09:00
KEY = HistoryKey.parse("binanceusdm", "ETHUSDT", "1h")


@pytest.fixture
def venue() -> KlinesVenue:
    return KlinesVenue(now_ms=NOW)


@pytest.fixture
def url(venue: KlinesVenue) -> Iterator[str]:
    with klines_server(venue) as server:
        yield server.url


def run(
    venue: KlinesVenue, url: str, store: HistoryStore, *, now: int = NOW, timeout_s: float = 5, **kw: Any
) -> DownloadReport:
    venue.now_ms = now
    client = ccxt_client("binanceusdm", url, timeout_s)
    return download(KEY, SINCE, store=store, client=client, now_ms=lambda: now, **kw)


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and not p.name.endswith(".parquet")]


def test_paginates_stores_closed_bars_only_and_validates(venue: KlinesVenue, url: str, tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    report = run(venue, url, store)
    pages = venue.requests
    assert len(pages) == 3 and report.requests == 3  # 1000 + 1000 + 170 (+ the forming bar)
    assert all(int(p["limit"]) <= MAX_LIMIT for p in pages)
    # each page starts at the bar after the previous page's last one: no overlap, no hole
    assert [int(p["startTime"]) for p in pages] == [T0, T0 + 1000 * HOUR, T0 + 2000 * HOUR]
    path = tmp_path / "binanceusdm" / "ETHUSDT-1h.parquet"
    frame = store.read(KEY)
    assert frame is not None and path.exists()
    assert len(frame) == report.total == report.added == CLOSED
    assert frame.index[0] == pd.Timestamp(SINCE) and frame.index[-1] == pd.Timestamp("2023-04-01T09:00Z")
    assert (frame.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()
    assert frame["close"].iloc[-1] == pytest.approx(price_at(NOW // HOUR * HOUR - HOUR), abs=0.01)
    assert leftovers(tmp_path) == []


def test_a_second_run_continues_from_the_last_stored_bar(venue: KlinesVenue, url: str, tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    run(venue, url, store, now=NOW - 24 * HOUR)
    before = store.read(KEY)
    assert before is not None and len(before) == CLOSED - 24
    venue.requests.clear()
    report = run(venue, url, store)
    assert report.resumed_from == before.index[-1].to_pydatetime()
    assert int(venue.requests[0]["startTime"]) == int(before.index[-1].value // 1_000_000) + HOUR
    assert report.added == 24 and report.requests == 1
    after = store.read(KEY)
    assert after is not None and len(after) == CLOSED
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    # nothing new: one request, nothing added, the file unchanged
    venue.requests.clear()
    assert run(venue, url, store).added == 0 and len(venue.requests) == 1


@pytest.mark.parametrize("value", ["NaN", None, "abc"])
def test_a_bad_value_from_the_venue_is_a_clear_error_and_nothing_of_it_is_written(
    venue: KlinesVenue, url: str, tmp_path: Path, value: object
) -> None:
    bad_open = T0 + 1500 * HOUR  # on the second page
    venue.bad[bad_open] = value
    store = HistoryStore(tmp_path)
    with pytest.raises(HistoryError) as caught:
        run(venue, url, store)
    message = str(caught.value)
    assert "bar 2023-03-04T12:00Z: close is missing or not a number" in message
    assert "nothing of this page written" in message
    kept = store.read(KEY)
    assert kept is not None and len(kept) == 1000  # the valid first page, so a rerun resumes there
    assert leftovers(tmp_path) == []
    venue.bad.clear()  # the venue answers properly again: the rerun completes from bar 1000
    venue.requests.clear()
    report = run(venue, url, store)
    assert int(venue.requests[0]["startTime"]) == T0 + 1000 * HOUR
    assert report.total == CLOSED


def test_a_hole_in_the_venues_series_stops_unless_allowed(venue: KlinesVenue, url: str, tmp_path: Path) -> None:
    hole = {T0 + 100 * HOUR, T0 + 101 * HOUR}  # two bars the venue never had (an outage)
    venue.holes |= hole
    store = HistoryStore(tmp_path / "strict")
    with pytest.raises(HistoryError, match=r"no bars between 2023-01-05T03:00Z and 2023-01-05T06:00Z \(2 missing\)"):
        run(venue, url, store)
    kept = store.read(KEY)
    assert kept is not None and len(kept) == 100 and kept.index[-1] == pd.Timestamp("2023-01-05T03:00Z")

    lenient = HistoryStore(tmp_path / "lenient")
    report = run(venue, url, lenient, allow_gaps=True)
    assert [(a.isoformat(), b.isoformat(), n) for a, b, n in report.gaps] == [
        ("2023-01-05T03:00:00+00:00", "2023-01-05T06:00:00+00:00", 2)
    ]
    stored = lenient.read(KEY)
    assert stored is not None and len(stored) == CLOSED - 2


def test_a_venue_that_does_not_answer_in_time_is_transient_and_writes_nothing(
    venue: KlinesVenue, url: str, tmp_path: Path
) -> None:
    venue.delay_s = 1.5
    store = HistoryStore(tmp_path)
    with pytest.raises(HistoryUnavailable, match=r"RequestTimeout.*run again to resume"):
        run(venue, url, store, timeout_s=0.4)
    assert store.read(KEY) is None and leftovers(tmp_path) == []


def test_unknown_market_and_bad_input_are_refused_with_the_reason(venue: KlinesVenue, url: str, tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="binanceusdm has no 7h candles"):
        HistoryKey.parse("binanceusdm", "ETHUSDT", "7h")
    with pytest.raises(HistoryError, match="--exchange 'kraken'"):
        HistoryKey.parse("kraken", "ETHUSDT", "1h")
    with pytest.raises(HistoryError, match="USDT perpetual"):
        HistoryKey.parse("binanceusdm", "ETHBTC", "1h")
    xrp = HistoryKey.parse("binanceusdm", "XRPUSDT", "1h")  # a valid ticker the venue does not list
    client = ccxt_client("binanceusdm", url, 5)
    with pytest.raises(HistoryError, match="no such market"):
        download(xrp, SINCE, store=HistoryStore(tmp_path), client=client, now_ms=lambda: NOW)
    assert not (tmp_path / "binanceusdm").exists()


def test_s3_store_downloads_resumes_and_is_read_by_the_worker(
    venue: KlinesVenue, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from tradingbot.pipeline.contracts import OptimiseRequest
    from tradingbot.pipeline.optimise import optimise

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="tb-artifacts")
        store = HistoryStore("s3://tb-artifacts/data/history", s3_client=s3)
        run(venue, url, store, now=NOW - 10 * HOUR)
        report = run(venue, url, store)
        assert report.added == 10 and report.total == CLOSED
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="tb-artifacts")["Contents"]]
        assert keys == ["data/history/binanceusdm/ETHUSDT-1h.parquet"]

        # the optimisation worker reads it, through the settings' default location on AWS
        monkeypatch.delenv("HISTORY_URI", raising=False)
        monkeypatch.setenv("ARTIFACTS_BUCKET", "tb-artifacts")
        req = OptimiseRequest(strategy="ema_crossover", grid={"fast": [10], "slow": [50]}, symbol="ETHUSDT")
        from tradingbot.entrypoints.lambdas.backtest import handler

        result = handler(req.model_dump(), None)
        assert result["data_kind"] == "history" and result["bars"] == CLOSED
        assert "history binanceusdm ETHUSDT 1h" in result["data"]
        assert result["results"]["ema_crossover"]["combinations"] == 1
        # no history for SOL: the packaged sample, labelled so
        sol = optimise(OptimiseRequest(strategy="ema_crossover", grid={"fast": [10], "slow": [50]}, symbol="SOLUSDT"))
        assert sol["data_kind"] == "sample" and sol["data"].startswith("offline sample SOLUSDT 1h")


def test_resolve_prefers_history_then_the_labelled_sample_then_says_how(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    sample = resolve_candles("ETHUSDT", "1h", store=store)
    assert sample.kind == "sample" and "no history downloaded" in sample.label
    assert sample.location.endswith("ETHUSDT-1h.csv.gz")
    with pytest.raises(HistoryError, match=r"no history for binanceusdm ETHUSDT 4h .* no packaged sample"):
        resolve_candles("ETHUSDT", "4h", store=store)
    frame = sample.candles.iloc[:500]
    store.write(KEY, frame)
    history = resolve_candles("ETHUSDT.P", "1h", store=store)
    assert history.kind == "history" and len(history.candles) == 500
    broken = tmp_path / "binanceusdm" / "BTCUSDT-1h.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(HistoryError, match=r"delete .*BTCUSDT-1h\.parquet and download again"):
        resolve_candles("BTCUSDT", "1h", store=store)


def test_cli_download_then_backtest_and_optimize_by_symbol(
    venue: KlinesVenue, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradingbot.entrypoints.cli import app

    venue.now_ms = None  # the command uses the wall clock
    monkeypatch.setenv("FEED_BINANCE_REST_URL", url)
    monkeypatch.setenv("HISTORY_URI", str(tmp_path))
    since = (dt.datetime.now(UTC) - dt.timedelta(hours=1200)).strftime("%Y-%m-%dT%H:00Z")
    runner = CliRunner()
    args = ["data", "download", "--exchange", "binanceusdm", "--symbol", "ETHUSDT", "--timeframe", "1h"]
    first = runner.invoke(app, [*args, "--since", since])
    assert first.exit_code == 0, first.output
    assert "1,200 new bars" in first.stdout or "1,199 new bars" in first.stdout, first.stdout
    again = runner.invoke(app, [*args, "--since", since])
    assert again.exit_code == 0 and "resumed after" in again.stdout, again.output

    out_json = tmp_path / "bt.json"
    bt = runner.invoke(app, ["backtest", "--symbol", "ETHUSDT", "--strategy", "ema_crossover", "--json", str(out_json)])
    assert bt.exit_code == 0, bt.output
    assert "data: history binanceusdm ETHUSDT 1h" in bt.stderr
    stored = pd.read_parquet(tmp_path / "binanceusdm" / "ETHUSDT-1h.parquet")
    equity = json.loads(out_json.read_text())["equity"]
    assert len(equity) == len(stored)  # the backtest ran on the downloaded bars

    opt = runner.invoke(app, ["optimize", "--symbol", "SOLUSDT", "--strategy", "ema_crossover", "--param", "fast=10"])
    assert opt.exit_code == 0, opt.output
    assert "data: offline sample SOLUSDT 1h" in opt.stderr and "no history downloaded" in opt.stderr

    both = runner.invoke(app, ["backtest", "--symbol", "ETHUSDT", "--data", "x.csv", "--all"])
    assert both.exit_code == 2 and "either --data FILE or --symbol" in both.stderr
    bad = runner.invoke(app, [*args[:-2], "--timeframe", "7h", "--since", since])
    assert bad.exit_code == 2 and "7h" in bad.stderr
