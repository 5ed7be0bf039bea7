"""Backtest API around the compiled kernel: one run with its trade list, or a whole grid in one call."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tradingbot.domain.backtest import kernel
from tradingbot.domain.backtest.breakdown import breakdowns
from tradingbot.domain.backtest.metrics import compute_metrics
from tradingbot.domain.candles import bar_interval
from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE
from tradingbot.domain.indicators import Indicators
from tradingbot.domain.margin import FIRST_TIER_MMR
from tradingbot.domain.strategies import Params, Signals, Strategy, get_strategy
from tradingbot.errors import PermanentError

YEAR = pd.Timedelta(days=365)  # crypto trades 24/7


class BacktestConfigError(PermanentError, ValueError):
    pass


@dataclass(frozen=True)
class BacktestConfig:
    initial_cash: float = 10_000.0
    fee: float = float(TAKER_FEE_RATE)  # taker fee per side, fraction of notional (domain.costs: one default)
    slippage_bps: float = float(SLIPPAGE_BPS)  # adverse price move on every fill, basis points
    leverage: float = 1.0
    size: float = 1.0  # fraction of equity committed (margin + opening fee) per position
    stop_loss: float = 0.0  # fraction of the entry price; 0 disables
    take_profit: float = 0.0  # fraction of the entry price; 0 disables
    # Binance's first BTCUSDT bracket, 0.4 % (domain.margin: the one source, with its citation)
    maintenance_margin: float = FIRST_TIER_MMR

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("initial_cash", self.initial_cash > 0, "must be positive"),
            ("fee", 0 <= self.fee < 0.05, "must be in [0, 0.05)"),
            ("slippage_bps", 0 <= self.slippage_bps < 1000, "must be in [0, 1000)"),
            ("leverage", 1 <= self.leverage <= 125, "must be in [1, 125]"),
            ("size", 0 < self.size <= 1, "must be in (0, 1]"),
            ("stop_loss", 0 <= self.stop_loss < 1, "must be in [0, 1)"),
            ("take_profit", self.take_profit >= 0, "must not be negative"),
            ("maintenance_margin", 0 <= self.maintenance_margin < 0.5, "must be in [0, 0.5)"),
        ]
        for name, ok, why in checks:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and math.isnan(value)):
                raise BacktestConfigError(f"{name}={value}: {why}")


@dataclass
class BacktestResult:
    strategy: str
    params: Params
    config: BacktestConfig
    equity: pd.Series
    trades: pd.DataFrame
    metrics: dict[str, float | int]
    candles: pd.DataFrame = field(repr=False)

    def summary_dict(self) -> dict[str, Any]:
        """The JSON contract's head: everything but the per-trade and per-bar lists."""
        return {
            "strategy": self.strategy,
            "params": self.params,
            "config": asdict(self.config),
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "breakdowns": breakdowns(self.trades),  # issue 18: by month, weekday, hour, exit reason, side
        }

    def trade_columns(self) -> dict[str, list[Any]]:
        """The trade list's JSON fields, column by column (``TRADE_FIELDS`` order), as Python values."""
        t = self.trades
        cols: dict[str, list[Any]] = {}
        for name in TRADE_FIELDS:
            if name.endswith("_time"):
                cols[name] = iso_utc(t[name])
            elif name in ("side", "exit_reason"):
                cols[name] = [str(v) for v in t[name]]
            else:
                cols[name] = t[name].to_numpy(np.float64).tolist()
        return cols

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON contract; times are ISO-8601 UTC. (``report.to_json`` writes the same
        document without building a dict per bar.)"""
        cols = self.trade_columns()
        trades = [dict(zip(TRADE_FIELDS, row, strict=True)) for row in zip(*cols.values(), strict=True)]
        equity = self.equity.to_numpy(np.float64).tolist()
        times = iso_utc(self.equity.index)
        return self.summary_dict() | {
            "trades": trades,
            "equity": [{"time": t, "equity": v} for t, v in zip(times, equity, strict=True)],
        }


TRADE_FIELDS = (
    "entry_time", "exit_time", "side", "entry_price", "exit_price", "quantity", "pnl", "fees", "funding",
    "exit_reason",
)  # fmt: skip


def iso_utc(times: pd.DatetimeIndex | pd.Series, quote: str = "") -> list[str]:
    """``YYYY-MM-DDTHH:MM:SSZ`` for every time (between ``quote`` marks), in one numpy call instead
    of a timezone conversion and a strftime per value (17 s at a million bars). Sub-second parts
    are dropped, as strftime did; naive times are taken as UTC."""
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    seconds = index.to_numpy("datetime64[ns]").astype("datetime64[s]")
    return [f"{quote}{s}Z{quote}" for s in np.datetime_as_string(seconds, unit="s").tolist()]


def _json_number(v: float | int) -> float | int | None:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no inf / nan (profit factor with no losing trade)
    return v


def funding_per_bar(candles: pd.DataFrame, funding: pd.Series | None) -> np.ndarray:
    """Map funding events (rate indexed by funding time) onto the bar whose open is the first at or
    after the event; several events in one bar add up."""
    out = np.zeros(len(candles))
    if funding is None or funding.empty:
        return out
    times = pd.DatetimeIndex(funding.index)
    if times.tz is None:
        times = times.tz_localize("UTC")
    rates = pd.to_numeric(funding, errors="coerce").to_numpy(np.float64)
    if np.isnan(rates).any():
        bad = int(np.argmax(np.isnan(rates)))
        raise BacktestConfigError(f"funding row {bad + 1}: rate is missing or not a number")
    pos = np.searchsorted(candles.index.asi8, times.asi8, side="left")
    inside = (pos > 0) & (pos < len(candles))  # events before the first bar or after the last are ignored
    np.add.at(out, pos[inside], rates[inside])
    return out


def _prices(candles: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(candles[k].to_numpy(np.float64)) for k in ("open", "high", "low", "close"))


def bars_per_year(candles: pd.DataFrame) -> float:
    return float(YEAR / bar_interval(candles))


def run_backtest(
    candles: pd.DataFrame,
    signals: Signals,
    config: BacktestConfig | None = None,
    funding: pd.Series | None = None,
    strategy: str = "custom",
    params: Params | None = None,
) -> BacktestResult:
    cfg = config or BacktestConfig()
    n = len(candles)
    o, h, lo, c = _prices(candles)
    equity = np.empty(n)
    eb = np.empty(n + 1, np.int64)
    xb = np.empty(n + 1, np.int64)
    sd = np.empty(n + 1, np.int8)
    ep, xp, q, pnl, fees, fund = (np.empty(n + 1) for _ in range(6))
    rsn = np.empty(n + 1, np.int8)
    sig = [np.ascontiguousarray(s, dtype=np.bool_) for s in signals]
    n_trades, in_market = kernel.simulate(
        o, h, lo, c, *sig, funding_per_bar(candles, funding),
        cfg.initial_cash, cfg.fee, cfg.slippage_bps / 10_000, cfg.size, cfg.leverage,
        cfg.stop_loss, cfg.take_profit, cfg.maintenance_margin,
        equity, eb, xb, sd, ep, xp, q, pnl, fees, fund, rsn,
    )  # fmt: skip
    k = n_trades
    idx = candles.index
    interval = bar_interval(candles)
    metrics = compute_metrics(
        equity, pnl[:k], fees[:k], fund[:k], xb[:k] - eb[:k], bool((rsn[:k] == kernel.REASON_LIQUIDATION).any()),
        cfg.initial_cash, interval, in_market,
    )  # fmt: skip
    trades = pd.DataFrame(
        {
            "entry_time": idx[eb[:k]],
            "exit_time": idx[xb[:k]],
            "side": np.where(sd[:k] > 0, "long", "short"),
            "entry_price": ep[:k],
            "exit_price": xp[:k],
            "quantity": q[:k],
            "pnl": pnl[:k],
            "fees": fees[:k],
            "funding": fund[:k],
            "exit_reason": np.asarray(kernel.REASONS, dtype=object)[rsn[:k]],
            "entry_bar": eb[:k],
            "exit_bar": xb[:k],
        }
    )
    equity_s = pd.Series(equity, index=idx, name="equity")
    return BacktestResult(strategy, dict(params or {}), cfg, equity_s, trades, metrics, candles)


def run_strategy(
    candles: pd.DataFrame,
    strategy: str | Strategy,
    params: Mapping[str, str | float | int] | None = None,
    config: BacktestConfig | None = None,
    funding: pd.Series | None = None,
    indicators: Indicators | None = None,
) -> BacktestResult:
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    resolved = strat.resolve(params)
    signals = strat.signals(indicators or Indicators(candles), **resolved)
    return run_backtest(candles, signals, config, funding, strat.name, resolved)


def run_grid(
    candles: pd.DataFrame,
    strategy: str | Strategy,
    combos: Iterable[Params],
    config: BacktestConfig | None = None,
    funding: pd.Series | None = None,
    indicators: Indicators | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 256,
) -> pd.DataFrame:
    """Backtest every parameter combination; one row of headline statistics per combination.

    Signals are built per chunk of combinations (indicators are memoised across the whole grid),
    then the chunk runs through the compiled grid kernel in one call, so memory is bounded by
    ``chunk`` x bars, not by the grid size.
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    cfg = config or BacktestConfig()
    ind = indicators or Indicators(candles)
    o, h, lo, c = _prices(candles)
    fund = funding_per_bar(candles, funding)
    bpy = bars_per_year(candles)
    n = len(candles)
    all_params: list[Params] = []
    tables: list[np.ndarray] = []
    combos = list(combos)
    for start in range(0, len(combos), chunk):
        part = combos[start : start + chunk]
        sig = np.empty((4, len(part), n), dtype=np.bool_)
        for row, p in enumerate(part):
            resolved = strat.resolve(p)
            all_params.append(resolved)
            for k, arr in enumerate(strat.fn(ind, **resolved)):
                sig[k, row] = arr
        tables.append(
            kernel.simulate_grid(
                o,
                h,
                lo,
                c,
                sig[0],
                sig[1],
                sig[2],
                sig[3],
                fund,
                cfg.initial_cash,
                cfg.fee,
                cfg.slippage_bps / 10_000,
                cfg.size,
                cfg.leverage,
                cfg.stop_loss,
                cfg.take_profit,
                cfg.maintenance_margin,
                bpy,
            )
        )
        if progress:
            progress(len(part))
    stats = np.vstack(tables) if tables else np.empty((0, kernel.N_STATS))
    frame = pd.DataFrame(all_params)
    for j, name in enumerate(kernel.STAT_NAMES):
        frame[name] = stats[:, j]
    frame["trades"] = frame["trades"].astype(int) if len(frame) else frame.get("trades")
    return frame
