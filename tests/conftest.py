from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradingbot.domain.candles import bundled_path, load_candles


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """The bundled 5,980 real hourly BTC/USDT candles."""
    return load_candles(bundled_path())


def make_candles(
    closes: list[float] | np.ndarray, start: str = "2024-01-01", freq: str = "1h", spread: float = 0.001
) -> pd.DataFrame:
    """Candles whose open is the previous close and whose high/low straddle the body by ``spread``."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    idx = pd.date_range(start, periods=len(close), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=idx)
