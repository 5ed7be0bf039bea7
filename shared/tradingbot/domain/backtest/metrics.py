"""Performance metrics of one backtest. The headline statistics come from the same compiled
``summarize`` the grid uses, so a grid row and a single run never disagree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tradingbot.domain.backtest import kernel

YEAR = pd.Timedelta(days=365)


def compute_metrics(
    equity: np.ndarray,
    pnl: np.ndarray,
    fees: np.ndarray,
    funding: np.ndarray,
    held_bars: np.ndarray,
    liquidated: bool,
    initial_cash: float,
    interval: pd.Timedelta,
    in_market: int,
) -> dict[str, float | int]:
    """All metrics from plain arrays (one entry per trade for ``pnl``, ``fees``, ``funding`` and
    ``held_bars``); working on numpy keeps a single backtest's overhead well under a millisecond."""
    n = len(equity)
    n_trades = len(pnl)
    bpy = YEAR / interval
    base = np.empty(kernel.N_STATS)
    kernel.summarize(equity, initial_cash, pnl, fees, funding, n_trades, in_market, bpy, base)
    m: dict[str, float | int] = {name: float(base[i]) for i, name in enumerate(kernel.STAT_NAMES)}
    m["trades"] = n_trades

    years = n * interval / YEAR
    final = equity[-1]
    m["cagr"] = _cagr(float(final), initial_cash, years)

    prev = np.concatenate(([initial_cash], equity[:-1]))
    # after a liquidation the balance is 0 and stays 0: those bars have no return
    returns = np.divide(equity - prev, prev, out=np.zeros_like(equity), where=prev > 0)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    m["sortino"] = float(np.mean(returns)) / downside * math.sqrt(bpy) if downside > 0 else 0.0
    m["calmar"] = m["cagr"] / m["max_drawdown"] if m["max_drawdown"] > 0 else 0.0
    m["expectancy"] = float(pnl.mean()) if n_trades else 0.0
    hours_per_bar = interval / pd.Timedelta(hours=1)
    m["avg_holding_hours"] = float(held_bars.mean() * hours_per_bar) if n_trades else 0.0
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    m["avg_win"] = float(wins.mean()) if wins.size else 0.0
    m["avg_loss"] = float(losses.mean()) if losses.size else 0.0
    m["liquidated"] = int(liquidated)
    m["initial_cash"] = float(initial_cash)
    m["bars"] = n
    return m


def _cagr(final: float, initial: float, years: float) -> float:
    if final <= 0 or years <= 0:
        return -1.0
    try:
        return float((final / initial) ** (1 / years) - 1)
    except OverflowError:  # a few bars that double the account annualise to infinity
        return math.inf
