"""Performance metrics of one backtest. The headline statistics come from the same compiled
``summarize`` the grid uses, so a grid row and a single run never disagree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tradingbot.backtest import kernel

YEAR = pd.Timedelta(days=365)


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    initial_cash: float,
    interval: pd.Timedelta,
    in_market: int,
) -> dict[str, float | int]:
    eq = equity.to_numpy(np.float64)
    n = len(eq)
    bpy = YEAR / interval
    base = np.empty(kernel.N_STATS)
    pnl = trades["pnl"].to_numpy(np.float64)
    kernel.summarize(
        eq, initial_cash, pnl, trades["fees"].to_numpy(np.float64), trades["funding"].to_numpy(np.float64),
        len(trades), in_market, bpy, base,
    )  # fmt: skip
    m: dict[str, float | int] = {name: float(base[i]) for i, name in enumerate(kernel.STAT_NAMES)}
    m["trades"] = len(trades)

    years = n * interval / YEAR
    final = eq[-1]
    m["cagr"] = (final / initial_cash) ** (1 / years) - 1 if final > 0 and years > 0 else -1.0

    prev = np.concatenate(([initial_cash], eq[:-1]))
    # after a liquidation the balance is 0 and stays 0: those bars have no return
    returns = np.divide(eq - prev, prev, out=np.zeros_like(eq), where=prev > 0)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    m["sortino"] = float(np.mean(returns)) / downside * math.sqrt(bpy) if downside > 0 else 0.0
    m["calmar"] = m["cagr"] / m["max_drawdown"] if m["max_drawdown"] > 0 else 0.0
    m["expectancy"] = float(pnl.mean()) if len(pnl) else 0.0
    if len(trades):
        held = (trades["exit_bar"] - trades["entry_bar"]).to_numpy() * interval
        m["avg_holding_hours"] = float(pd.to_timedelta(held).mean() / pd.Timedelta(hours=1))
        m["avg_win"] = float(pnl[pnl > 0].mean()) if (pnl > 0).any() else 0.0
        m["avg_loss"] = float(pnl[pnl <= 0].mean()) if (pnl <= 0).any() else 0.0
    else:
        m["avg_holding_hours"] = 0.0
        m["avg_win"] = 0.0
        m["avg_loss"] = 0.0
    m["liquidated"] = int((trades["exit_reason"] == "liquidation").any()) if len(trades) else 0
    m["initial_cash"] = float(initial_cash)
    m["bars"] = n
    return m
