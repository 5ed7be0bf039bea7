"""Many parameter combinations of one strategy over several bar windows, through the compiled grid
kernel.

Signals are computed once per combination on the whole history (every indicator is causal, so a
window's first bars see a warmed-up indicator, never a future bar), then each window's slice runs
through :func:`tradingbot.domain.backtest.kernel.simulate_grid`. Combinations are processed in
chunks: memory is bounded by ``chunk`` x bars, whatever the number of combinations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradingbot.domain.backtest import BacktestConfig, BacktestResult, kernel, run_backtest
from tradingbot.domain.backtest.engine import bars_per_year, funding_per_bar
from tradingbot.domain.indicators import Indicators
from tradingbot.domain.strategies import Params, Signals, Strategy, get_strategy

STATS = kernel.STAT_NAMES
_MINIMISE = frozenset({"max_drawdown", "fees"})


def maximise(objective: str) -> bool:
    """Whether a larger value of the statistic is better (everything but drawdown and fees)."""
    return objective not in _MINIMISE


@dataclass(frozen=True)
class Window:
    """Bars ``start`` (inclusive) to ``end`` (exclusive) of the history."""

    start: int
    end: int

    @property
    def bars(self) -> int:
        return self.end - self.start


class Evaluator:
    """Backtests of one strategy on one history, counted (``evaluations``: combination x window runs)."""

    def __init__(
        self,
        candles: pd.DataFrame,
        strategy: str | Strategy,
        *,
        config: BacktestConfig | None = None,
        funding: pd.Series | None = None,
        indicators: Indicators | None = None,
        chunk: int = 128,
    ) -> None:
        self.candles = candles
        self.strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
        self.config = config or BacktestConfig()
        self.funding = funding
        self.indicators = indicators or Indicators(candles)
        self.chunk = chunk
        self.bars_per_year = bars_per_year(candles)
        self._prices = [np.ascontiguousarray(candles[k].to_numpy(np.float64)) for k in ("open", "high", "low", "close")]
        self._funding = funding_per_bar(candles, funding)
        self.evaluations = 0

    def signals(self, params: Params) -> Signals:
        return self.strategy.fn(self.indicators, **self.strategy.resolve(params))

    def table(
        self, combos: Sequence[Params], windows: Sequence[Window], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Statistics (``STATS`` columns) of every combination on every window: shape
        ``(len(windows), len(combos), len(STATS))``."""
        n = len(self.candles)
        out = np.empty((len(windows), len(combos), kernel.N_STATS))
        cfg = self.config
        size = min(self.chunk, max(1, len(combos)))
        sig = np.empty((4, size, n), dtype=np.bool_)
        o, h, lo, c = self._prices
        for start in range(0, len(combos), size):
            part = combos[start : start + size]
            m = len(part)
            for row, p in enumerate(part):
                for k, arr in enumerate(self.signals(p)):
                    sig[k, row] = arr
            for w, win in enumerate(windows):
                a, b = win.start, win.end
                sl = [np.ascontiguousarray(sig[k, :m, a:b]) for k in range(4)]
                out[w, start : start + m] = kernel.simulate_grid(
                    o[a:b], h[a:b], lo[a:b], c[a:b], sl[0], sl[1], sl[2], sl[3], self._funding[a:b],
                    cfg.initial_cash, cfg.fee, cfg.slippage_bps / 10_000, cfg.size, cfg.leverage,
                    cfg.stop_loss, cfg.take_profit, cfg.maintenance_margin, self.bars_per_year,
                )  # fmt: skip
            self.evaluations += m * len(windows)
            if progress:
                progress(m * len(windows))
        return out

    def run(self, params: Params, window: Window) -> BacktestResult:
        """One full backtest (trades, equity) of ``params`` on ``window``."""
        sig = self.signals(params)
        a, b = window.start, window.end
        sliced = Signals(*(np.ascontiguousarray(s[a:b]) for s in sig))
        self.evaluations += 1
        return run_backtest(
            self.candles.iloc[a:b], sliced, self.config, self.funding, self.strategy.name,
            self.strategy.resolve(params),
        )  # fmt: skip


def row_metrics(row: np.ndarray) -> dict[str, float]:
    """One table row as ``{statistic: value}``."""
    return {name: float(row[i]) for i, name in enumerate(STATS)}
