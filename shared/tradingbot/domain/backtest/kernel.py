"""Compiled simulation kernel for one USDT-margined perpetual position at a time.

Conventions (docs/adr/0002-backtest-conventions.md explains why):

* A signal at bar t's close acts at bar t+1's open. Exits are processed before entries, so an
  opposite entry reverses the position at the same open. No pyramiding: an entry while already in
  that direction is ignored; simultaneous long and short entries while flat are ignored.
* Every fill is a taker market order: slippage moves the price against us, the fee is
  ``fee * quantity * fill_price``.
* Sizing: margin plus opening fee equals ``size`` x equity, i.e.
  ``quantity = size * equity / (fill * (1 / leverage + fee))``. With leverage 1 this is
  exactly backtesting.py's rule for a fractional ``size``.
* Stop-loss / take-profit are fractions of the entry fill, checked from the entry bar on against
  the open (a gap fills at the open), then low / high. If the stop and the target are both inside
  one bar the stop fills first. Liquidation (cross margin: the whole wallet backs the position)
  happens when equity falls to the maintenance margin; it fills at the liquidation price and the
  remaining balance is lost, after which nothing more trades.
* Funding is charged at the open of the bar it falls due in, on ``quantity * open``, before any
  order at that open; longs pay a positive rate, shorts receive it.
* Any open position is closed at the last bar's close (reason ``end``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

REASON_SIGNAL = 0
REASON_STOP = 1
REASON_TAKE_PROFIT = 2
REASON_LIQUIDATION = 3
REASON_END = 4
REASONS = ("signal", "stop_loss", "take_profit", "liquidation", "end")

# summary columns produced by the grid kernel (and by metrics.summary for a single run)
STAT_FINAL_EQUITY = 0
STAT_TOTAL_RETURN = 1
STAT_MAX_DRAWDOWN = 2
STAT_SHARPE = 3
STAT_TRADES = 4
STAT_WIN_RATE = 5
STAT_PROFIT_FACTOR = 6
STAT_FEES = 7
STAT_FUNDING = 8
STAT_EXPOSURE = 9
N_STATS = 10
STAT_NAMES = (
    "final_equity",
    "total_return",
    "max_drawdown",
    "sharpe",
    "trades",
    "win_rate",
    "profit_factor",
    "fees",
    "funding",
    "exposure",
)


@numba.njit(cache=True)
def _record(
    k: int,
    entry_bar: int,
    exit_bar: int,
    side: int,
    entry_px: float,
    exit_px: float,
    qty: float,
    pnl: float,
    fees: float,
    funding: float,
    reason: int,
    tr_entry_bar: np.ndarray,
    tr_exit_bar: np.ndarray,
    tr_side: np.ndarray,
    tr_entry_price: np.ndarray,
    tr_exit_price: np.ndarray,
    tr_qty: np.ndarray,
    tr_pnl: np.ndarray,
    tr_fees: np.ndarray,
    tr_funding: np.ndarray,
    tr_reason: np.ndarray,
) -> None:
    """Row ``k`` of the trade table (one writer for signal exits, stops/targets/liquidation and the end)."""
    tr_entry_bar[k] = entry_bar
    tr_exit_bar[k] = exit_bar
    tr_side[k] = side
    tr_entry_price[k] = entry_px
    tr_exit_price[k] = exit_px
    tr_qty[k] = qty
    tr_pnl[k] = pnl
    tr_fees[k] = fees
    tr_funding[k] = funding
    tr_reason[k] = reason


@numba.njit(cache=True)
def simulate(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
    funding: np.ndarray,
    initial_cash: float,
    fee: float,
    slip: float,
    size: float,
    leverage: float,
    stop_loss: float,
    take_profit: float,
    maintenance: float,
    equity: np.ndarray,
    tr_entry_bar: np.ndarray,
    tr_exit_bar: np.ndarray,
    tr_side: np.ndarray,
    tr_entry_price: np.ndarray,
    tr_exit_price: np.ndarray,
    tr_qty: np.ndarray,
    tr_pnl: np.ndarray,
    tr_fees: np.ndarray,
    tr_funding: np.ndarray,
    tr_reason: np.ndarray,
) -> tuple[int, int]:
    """Run one backtest, writing the equity curve and trade table into the given arrays.

    Returns (number of trades, bars with an open position). ``pnl`` of a trade is net of its
    fees and funding, so the final equity is ``initial_cash + sum(pnl)``.
    """
    n = o.shape[0]
    cash = initial_cash  # wallet balance: realised PnL, fees and funding
    side = 0
    qty = 0.0
    entry_px = 0.0
    entry_bar = 0
    trade_fees = 0.0
    trade_funding = 0.0
    sl_px = 0.0
    tp_px = 0.0
    n_trades = 0
    in_market = 0
    dead = False

    for i in range(n):
        if i > 0 and not dead:
            # 1. funding due at this open, on the position carried into it
            if side != 0 and funding[i] != 0.0:
                pay = side * qty * o[i] * funding[i]
                cash -= pay
                trade_funding += pay

            # 2. orders decided at the previous close fill at this open: exits first
            j = i - 1
            if side != 0 and (
                (side == 1 and (long_exit[j] or short_entry[j])) or (side == -1 and (short_exit[j] or long_entry[j]))
            ):
                px = o[i] * (1.0 - side * slip)
                f = qty * px * fee
                gross = side * qty * (px - entry_px)
                cash += gross - f
                trade_fees += f
                _record(
                    n_trades,
                    entry_bar,
                    i,
                    side,
                    entry_px,
                    px,
                    qty,
                    gross - trade_fees - trade_funding,
                    trade_fees,
                    trade_funding,
                    REASON_SIGNAL,
                    tr_entry_bar,
                    tr_exit_bar,
                    tr_side,
                    tr_entry_price,
                    tr_exit_price,
                    tr_qty,
                    tr_pnl,
                    tr_fees,
                    tr_funding,
                    tr_reason,
                )
                n_trades += 1
                side = 0
            if side == 0 and cash > 0.0:
                want = 0
                if long_entry[j] and not short_entry[j]:
                    want = 1
                elif short_entry[j] and not long_entry[j]:
                    want = -1
                if want != 0:
                    px = o[i] * (1.0 + want * slip)
                    q = size * cash / (px * (1.0 / leverage + fee))
                    if q > 0.0:
                        side = want
                        qty = q
                        entry_px = px
                        entry_bar = i
                        trade_fees = qty * px * fee
                        trade_funding = 0.0
                        cash -= trade_fees
                        sl_px = px * (1.0 - side * stop_loss) if stop_loss > 0.0 else 0.0
                        tp_px = px * (1.0 + side * take_profit) if take_profit > 0.0 else 0.0

            # 3. intrabar: liquidation, stop-loss, take-profit (adverse side first)
            if side != 0:
                exit_px = 0.0
                reason = -1
                if side == 1:
                    liq = (qty * entry_px - cash) / (qty * (1.0 - maintenance))
                    adverse = liq
                    adverse_reason = REASON_LIQUIDATION
                    if sl_px > 0.0 and sl_px > liq:
                        adverse = sl_px
                        adverse_reason = REASON_STOP
                    if o[i] <= adverse and i > entry_bar:
                        exit_px, reason = o[i], adverse_reason
                    elif lo[i] <= adverse:
                        exit_px, reason = adverse, adverse_reason
                    elif tp_px > 0.0 and o[i] >= tp_px and i > entry_bar:
                        exit_px, reason = o[i], REASON_TAKE_PROFIT
                    elif tp_px > 0.0 and h[i] >= tp_px:
                        exit_px, reason = tp_px, REASON_TAKE_PROFIT
                else:
                    liq = (cash + qty * entry_px) / (qty * (1.0 + maintenance))
                    adverse = liq
                    adverse_reason = REASON_LIQUIDATION
                    if sl_px > 0.0 and sl_px < liq:
                        adverse = sl_px
                        adverse_reason = REASON_STOP
                    if o[i] >= adverse and i > entry_bar:
                        exit_px, reason = o[i], adverse_reason
                    elif h[i] >= adverse:
                        exit_px, reason = adverse, adverse_reason
                    elif tp_px > 0.0 and o[i] <= tp_px and i > entry_bar:
                        exit_px, reason = o[i], REASON_TAKE_PROFIT
                    elif tp_px > 0.0 and lo[i] <= tp_px:
                        exit_px, reason = tp_px, REASON_TAKE_PROFIT
                if reason >= 0:
                    px = exit_px * (1.0 - side * slip)
                    f = qty * px * fee
                    gross = side * qty * (px - entry_px)
                    if reason == REASON_LIQUIDATION:
                        # the remaining balance (maintenance margin) goes to the insurance fund
                        f = cash + gross
                        f = max(f, 0.0)
                        cash = 0.0
                        dead = True
                    else:
                        cash += gross - f
                    trade_fees += f
                    _record(
                        n_trades,
                        entry_bar,
                        i,
                        side,
                        entry_px,
                        px,
                        qty,
                        gross - trade_fees - trade_funding,
                        trade_fees,
                        trade_funding,
                        reason,
                        tr_entry_bar,
                        tr_exit_bar,
                        tr_side,
                        tr_entry_price,
                        tr_exit_price,
                        tr_qty,
                        tr_pnl,
                        tr_fees,
                        tr_funding,
                        tr_reason,
                    )
                    n_trades += 1
                    side = 0

        # 4. the last bar closes whatever is open, at its close
        if i == n - 1 and side != 0:
            px = c[i] * (1.0 - side * slip)
            f = qty * px * fee
            gross = side * qty * (px - entry_px)
            cash += gross - f
            trade_fees += f
            _record(
                n_trades,
                entry_bar,
                i,
                side,
                entry_px,
                px,
                qty,
                gross - trade_fees - trade_funding,
                trade_fees,
                trade_funding,
                REASON_END,
                tr_entry_bar,
                tr_exit_bar,
                tr_side,
                tr_entry_price,
                tr_exit_price,
                tr_qty,
                tr_pnl,
                tr_fees,
                tr_funding,
                tr_reason,
            )
            n_trades += 1
            side = 0
            in_market += 1

        if side != 0:
            in_market += 1
            equity[i] = cash + side * qty * (c[i] - entry_px)
        else:
            equity[i] = cash
    return n_trades, in_market


@numba.njit(cache=True)
def summarize(
    equity: np.ndarray,
    initial_cash: float,
    pnl: np.ndarray,
    fees: np.ndarray,
    funding: np.ndarray,
    n_trades: int,
    in_market: int,
    bars_per_year: float,
    out: np.ndarray,
) -> None:
    """Headline statistics into ``out`` (indexed by the STAT_* constants)."""
    n = equity.shape[0]
    peak = initial_cash
    max_dd = 0.0
    prev = initial_cash
    s = 0.0
    s2 = 0.0
    for i in range(n):
        e = equity[i]
        peak = max(peak, e)
        if peak > 0.0:
            dd = 1.0 - e / peak
            max_dd = max(max_dd, dd)
        r = e / prev - 1.0 if prev > 0.0 else 0.0
        s += r
        s2 += r * r
        prev = e
    mean = s / n
    var = (s2 - n * mean * mean) / (n - 1) if n > 1 else 0.0
    sharpe = mean / math.sqrt(var) * math.sqrt(bars_per_year) if var > 1e-30 else 0.0

    wins = 0
    gross_win = 0.0
    gross_loss = 0.0
    total_fees = 0.0
    total_funding = 0.0
    for k in range(n_trades):
        if pnl[k] > 0.0:
            wins += 1
            gross_win += pnl[k]
        else:
            gross_loss -= pnl[k]
        total_fees += fees[k]
        total_funding += funding[k]
    out[STAT_FINAL_EQUITY] = equity[n - 1]
    out[STAT_TOTAL_RETURN] = equity[n - 1] / initial_cash - 1.0
    out[STAT_MAX_DRAWDOWN] = max_dd
    out[STAT_SHARPE] = sharpe
    out[STAT_TRADES] = n_trades
    out[STAT_WIN_RATE] = wins / n_trades if n_trades > 0 else 0.0
    if gross_loss > 0.0:
        out[STAT_PROFIT_FACTOR] = gross_win / gross_loss
    else:
        out[STAT_PROFIT_FACTOR] = np.inf if gross_win > 0.0 else 0.0
    out[STAT_FEES] = total_fees
    out[STAT_FUNDING] = total_funding
    out[STAT_EXPOSURE] = in_market / n


@numba.njit(cache=True)
def simulate_grid(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
    funding: np.ndarray,
    initial_cash: float,
    fee: float,
    slip: float,
    size: float,
    leverage: float,
    stop_loss: float,
    take_profit: float,
    maintenance: float,
    bars_per_year: float,
) -> np.ndarray:
    """One backtest per row of the 2-D signal arrays; returns a (combinations x N_STATS) table.

    Scratch buffers are allocated once and reused, so memory stays flat in the number of rows.
    """
    m, n = long_entry.shape
    out = np.empty((m, N_STATS))
    equity = np.empty(n)
    eb = np.empty(n + 1, np.int64)
    xb = np.empty(n + 1, np.int64)
    sd = np.empty(n + 1, np.int8)
    ep = np.empty(n + 1)
    xp = np.empty(n + 1)
    q = np.empty(n + 1)
    pnl = np.empty(n + 1)
    fees = np.empty(n + 1)
    fund = np.empty(n + 1)
    rsn = np.empty(n + 1, np.int8)
    for k in range(m):
        n_trades, in_market = simulate(
            o, h, lo, c, long_entry[k], long_exit[k], short_entry[k], short_exit[k], funding,
            initial_cash, fee, slip, size, leverage, stop_loss, take_profit, maintenance,
            equity, eb, xb, sd, ep, xp, q, pnl, fees, fund, rsn,
        )  # fmt: skip
        summarize(equity, initial_cash, pnl, fees, fund, n_trades, in_market, bars_per_year, out[k])
    return out
