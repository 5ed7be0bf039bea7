"""Backtest report breakdowns (tradingbot.domain.backtest.breakdown) on a hand-made trade list."""

from __future__ import annotations

import pandas as pd

from tradingbot.domain.backtest.breakdown import breakdowns, longest_streaks


def test_breakdowns_group_by_exit_time_reason_and_side() -> None:
    exits = pd.to_datetime(
        ["2024-01-01T09:00Z", "2024-01-02T09:00Z", "2024-01-31T23:00Z", "2024-02-03T10:00Z", "2024-02-05T09:00Z"]
    )  # Mon, Tue, Wed, Sat, Mon
    trades = pd.DataFrame({
        "exit_time": exits, "pnl": [10.0, -4.0, -1.0, 6.0, 0.0], "side": ["long", "short", "long", "long", "short"],
        "exit_reason": ["signal", "stop_loss", "signal", "take_profit", "end"],
    })  # fmt: skip
    b = breakdowns(trades)
    assert b["by_month"] == {
        "2024-01": {"trades": 3, "wins": 1, "win_rate": 1 / 3, "pnl": 5.0, "avg_pnl": 5.0 / 3},
        "2024-02": {"trades": 2, "wins": 1, "win_rate": 0.5, "pnl": 6.0, "avg_pnl": 3.0},
    }
    assert list(b["by_weekday"]) == ["Monday", "Tuesday", "Wednesday", "Saturday"]  # calendar order, not a-z
    assert b["by_weekday"]["Monday"]["trades"] == 2 and b["by_weekday"]["Monday"]["pnl"] == 10.0
    assert list(b["by_hour"]) == ["09", "10", "23"] and b["by_hour"]["09"]["trades"] == 3
    assert b["by_exit_reason"]["signal"] == {"trades": 2, "wins": 1, "win_rate": 0.5, "pnl": 9.0, "avg_pnl": 4.5}
    assert b["by_side"]["short"]["wins"] == 0  # a zero-PnL trade is not a win (the win-rate rule)
    assert (b["max_consecutive_wins"], b["max_consecutive_losses"]) == (1, 2)


def test_streaks_and_an_empty_trade_list() -> None:
    assert longest_streaks([1, 2, -1, -1, -1, 3, 0]) == (2, 3)
    empty = pd.DataFrame({"exit_time": pd.to_datetime([], utc=True), "pnl": [], "side": [], "exit_reason": []})
    b = breakdowns(empty)
    assert b["by_month"] == {} and b["max_consecutive_wins"] == 0 and b["max_consecutive_losses"] == 0
