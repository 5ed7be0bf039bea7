"""Self-contained HTML report of one backtest (plotly.js inlined, so it opens offline)."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tradingbot.domain.backtest.engine import BacktestResult

_PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure"}


def _fmt(key: str, value: float | int) -> str:
    if key in _PERCENT:
        return f"{value * 100:.2f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"


def render_html(result: BacktestResult) -> str:
    candles = result.candles
    trades = result.trades
    eq = result.equity
    drawdown = eq / eq.cummax() - 1.0

    fig = make_subplots(
        rows=3, cols=1, shared_xaxes=True, row_heights=[0.55, 0.25, 0.2], vertical_spacing=0.03,
        subplot_titles=("Price and trades", "Equity (USDT)", "Drawdown"),
    )  # fmt: skip
    fig.add_trace(
        go.Candlestick(
            x=candles.index,
            open=candles["open"],
            high=candles["high"],
            low=candles["low"],
            close=candles["close"],
            name="price",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    for side, symbol, color in (("long", "triangle-up", "#16a34a"), ("short", "triangle-down", "#dc2626")):
        part = trades[trades["side"] == side]
        fig.add_trace(
            go.Scatter(x=part["entry_time"], y=part["entry_price"], mode="markers", name=f"{side} entry",
                       marker={"symbol": symbol, "size": 9, "color": color}),
            row=1, col=1,
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=trades["exit_time"], y=trades["exit_price"], mode="markers", name="exit",
                   marker={"symbol": "x", "size": 7, "color": "#334155"},
                   text=trades["exit_reason"]),
        row=1, col=1,
    )  # fmt: skip
    fig.add_trace(go.Scatter(x=eq.index, y=eq, name="equity", line={"color": "#2563eb"}), row=2, col=1)
    fig.add_trace(
        go.Scatter(x=drawdown.index, y=drawdown * 100, name="drawdown %", fill="tozeroy", line={"color": "#dc2626"}),
        row=3,
        col=1,
    )
    fig.update_layout(height=900, xaxis_rangeslider_visible=False, margin={"t": 40, "l": 60, "r": 20})
    chart = fig.to_html(full_html=False, include_plotlyjs=True)

    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(k, v))}</td></tr>" for k, v in result.metrics.items()
    )
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    cfg = result.config
    title = f"{result.strategy} backtest"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem}}table{{border-collapse:collapse}}
th,td{{padding:.2rem .8rem;border-bottom:1px solid #e2e8f0;text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Parameters: {html.escape(params)}. Fee {cfg.fee * 100:.3f} % a side, slippage {cfg.slippage_bps} bps,
leverage {cfg.leverage}x, size {cfg.size * 100:.0f} % of equity. {len(candles):,} bars from
{candles.index[0]:%Y-%m-%d %H:%M} to {candles.index[-1]:%Y-%m-%d %H:%M} UTC.</p>
<table id="metrics">{rows}</table>
{chart}
</body></html>
"""
