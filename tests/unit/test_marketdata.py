from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradingbot.domain.candles import (
    CandleDataError,
    bar_interval,
    extend_by_repetition,
    find_gaps,
    load_candles,
    resample,
)


def test_bundled_data_is_the_documented_series(btc_1h: pd.DataFrame) -> None:
    assert len(btc_1h) == 5980
    assert btc_1h.index[0] == pd.Timestamp("2024-01-01T00:00Z")
    assert btc_1h.index[-1] == pd.Timestamp("2024-09-06T03:00Z")
    assert btc_1h["close"].iloc[0] == pytest.approx(42475.23)
    assert bar_interval(btc_1h) == pd.Timedelta(hours=1)
    assert find_gaps(btc_1h) == []
    assert list(btc_1h.columns) == ["open", "high", "low", "close", "volume"]


def _write_csv(tmp_path: Path, rows: list[str], name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


GOOD = [
    "2024-01-01T00:00:00Z,100,110,90,105,1",
    "2024-01-01T01:00:00Z,105,112,100,110,2",
    "2024-01-01T02:00:00Z,110,115,108,111,3",
]


def test_csv_gz_and_parquet_load_identically(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path, GOOD)
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    pq = tmp_path / "c.parquet"
    load_candles(csv).reset_index().to_parquet(pq)
    a, b, c = load_candles(csv), load_candles(gz), load_candles(pq)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert str(a.index.tz) == "UTC"


def test_epoch_millisecond_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "ms.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1704067200000,1,2,0.5,1.5,1\n1704070800000,1.5,2,1,1.2,1\n")
    assert load_candles(path).index[1] == pd.Timestamp("2024-01-01T01:00Z")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([GOOD[0], GOOD[2], GOOD[1]], "row 3, column timestamp: not sorted"),
        ([GOOD[0], GOOD[1], GOOD[1]], "row 3, column timestamp: duplicate"),
        ([GOOD[0], "2024-01-01T01:00:00Z,105,112,100,,2"], "row 2, column close: missing"),
        ([GOOD[0], "2024-01-01T01:00:00Z,105,112,-1,110,2"], "row 2, column low: price must be positive"),
        ([GOOD[0], "2024-01-01T01:00:00Z,105,108,100,110,2"], "row 2, column high: below open or close"),
        ([GOOD[0], "2024-01-01T01:00:00Z,105,112,106,110,2"], "row 2, column low: above open or close"),
        ([GOOD[0], "yesterday,105,112,100,110,2"], "row 2, column timestamp: cannot parse"),
        ([GOOD[0], "2024-01-01T01:00:00Z,105,112,100,abc,2"], "row 2, column close: missing or not a number"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(CandleDataError, match=message):
        load_candles(_write_csv(tmp_path, rows))


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("timestamp,open,high,low,volume\n2024-01-01,1,2,0.5,1\n")
    with pytest.raises(CandleDataError, match="missing column"):
        load_candles(path)
    with pytest.raises(CandleDataError, match="close"):
        load_candles(path)


def test_unsupported_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CandleDataError, match="not found"):
        load_candles(tmp_path / "nope.csv")
    other = tmp_path / "x.xlsx"
    other.write_text("x")
    with pytest.raises(CandleDataError, match="unsupported format"):
        load_candles(other)


def test_gaps_are_reported(btc_1h: pd.DataFrame) -> None:
    holey = btc_1h.drop(btc_1h.index[100:103])
    gaps = find_gaps(holey)
    assert len(gaps) == 1
    assert gaps[0].missing_bars == 3
    assert gaps[0].after == btc_1h.index[99]
    assert gaps[0].before == btc_1h.index[103]


def test_resample_to_4h_aggregates_ohlcv(btc_1h: pd.DataFrame) -> None:
    h4 = resample(btc_1h, "4h")
    first = btc_1h.iloc[:4]
    assert h4.index[0] == btc_1h.index[0]
    assert h4["open"].iloc[0] == first["open"].iloc[0]
    assert h4["high"].iloc[0] == first["high"].max()
    assert h4["low"].iloc[0] == first["low"].min()
    assert h4["close"].iloc[0] == first["close"].iloc[-1]
    assert h4["volume"].iloc[0] == pytest.approx(first["volume"].sum())
    # 5,980 = 4 * 1,495: no partial bucket; drop one bar and the incomplete bucket disappears
    assert len(h4) == 1495
    assert len(resample(btc_1h.iloc[:-1], "4h")) == 1494


def test_resample_rejects_a_finer_or_uneven_target(btc_1h: pd.DataFrame) -> None:
    with pytest.raises(CandleDataError, match="multiple"):
        resample(btc_1h, "30min")
    with pytest.raises(CandleDataError, match="multiple"):
        resample(btc_1h, "90min")


def test_extend_by_repetition_keeps_prices_continuous(btc_1h: pd.DataFrame) -> None:
    year = extend_by_repetition(btc_1h, 8760)
    assert len(year) == 8760
    assert find_gaps(year) == []
    seam = len(btc_1h)
    assert year["open"].iloc[seam] == pytest.approx(year["close"].iloc[seam - 1])
    assert (year[["open", "high", "low", "close"]].to_numpy() > 0).all()
    assert np.all(year["high"] >= year[["open", "close"]].max(axis=1))
