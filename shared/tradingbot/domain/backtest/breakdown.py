"""Where a backtest's profit came from, as freqtrade users expect it: per calendar month, weekday
and hour of day (UTC, by the trade's exit: when its profit or loss is realised), per exit reason,
long against short, and the longest runs of winning and losing trades.

A win is a trade with ``pnl > 0`` (the same rule as the win rate). Sums use ``math.fsum`` (exactly
rounded), so a breakdown does not depend on the order of the trades."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _group(keys: Iterable[str], pnl: list[float], order: Callable[[str], Any] = str) -> dict[str, dict[str, Any]]:
    buckets: dict[str, list[float]] = {}
    for key, p in zip(keys, pnl, strict=True):
        buckets.setdefault(key, []).append(p)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(buckets, key=order):
        values = buckets[key]
        wins = sum(1 for v in values if v > 0)
        total = math.fsum(values)
        out[key] = {"trades": len(values), "wins": wins, "win_rate": wins / len(values), "pnl": total,
                    "avg_pnl": total / len(values)}  # fmt: skip
    return out


def longest_streaks(pnl: Iterable[float]) -> tuple[int, int]:
    """(most consecutive winning trades, most consecutive losing trades), in trade order."""
    best_w = best_l = run_w = run_l = 0
    for p in pnl:
        if p > 0:
            run_w, run_l = run_w + 1, 0
        else:
            run_w, run_l = 0, run_l + 1
        best_w, best_l = max(best_w, run_w), max(best_l, run_l)
    return best_w, best_l


def breakdowns(trades: pd.DataFrame) -> dict[str, Any]:
    """Every breakdown of the trade list (``exit_time`` tz-aware or UTC, ``pnl``, ``side``, ``exit_reason``)."""
    pnl = [float(v) for v in trades["pnl"]]
    times = pd.DatetimeIndex(trades["exit_time"])
    if times.tz is not None:
        times = times.tz_convert("UTC")
    wins, losses = longest_streaks(pnl)
    return {
        "by_month": _group([f"{t.year:04d}-{t.month:02d}" for t in times], pnl),
        "by_weekday": _group([WEEKDAYS[t.weekday()] for t in times], pnl, WEEKDAYS.index),
        "by_hour": _group([f"{t.hour:02d}" for t in times], pnl),
        "by_exit_reason": _group([str(r) for r in trades["exit_reason"]], pnl),
        "by_side": _group([str(s) for s in trades["side"]], pnl),
        "max_consecutive_wins": wins,
        "max_consecutive_losses": losses,
    }
