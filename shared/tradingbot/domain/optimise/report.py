"""The optimisation report: one self-contained HTML file (plotly.js inlined once, so it opens
offline) with the parameter heatmap, in-sample against out-of-sample per fold, the stitched
out-of-sample equity beside buy-and-hold, and the fold table; and the JSON document."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np
import pandas as pd

from tradingbot.domain.optimise.evaluate import STATS
from tradingbot.domain.optimise.walkforward import OptimisationResult


def to_json(result: OptimisationResult) -> str:
    """The run as JSON, with every evaluated combination (``candidates``)."""
    return json.dumps(result.to_dict(candidates=True), indent=1, allow_nan=False, default=str)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:+.2f} %"


def _num(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def heatmap_frame(result: OptimisationResult, objective: str) -> pd.DataFrame | None:
    """The latest window's ``objective`` over the first two parameters (the best value over the
    others), or ``None`` for a one-parameter strategy."""
    names = list(result.space)
    if len(names) < 2 or not result.latest.params:
        return None
    j = STATS.index(objective)
    frame = pd.DataFrame(result.latest.params)
    frame["value"] = result.latest.table[:, j]
    frame["value"] = frame["value"].replace([np.inf, -np.inf], np.nan)
    return frame.groupby([names[1], names[0]])["value"].max().unstack(names[0])


def render_html(result: OptimisationResult, *, title: str | None = None, data_label: str = "") -> str:
    # plotly costs ~0.3 s to import: only the --report path pays it
    import plotly.graph_objects as go

    objective = result.search.objectives[0]
    parts: list[str] = []
    first = True

    def chart(fig: Any) -> None:
        nonlocal first
        fig.update_layout(margin={"t": 50, "l": 60, "r": 20, "b": 40}, height=420)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False

    grid = heatmap_frame(result, objective)
    if grid is not None:
        names = list(result.space)
        heat = go.Heatmap(
            z=grid.to_numpy(),
            x=[str(c) for c in grid.columns],
            y=[str(i) for i in grid.index],
            colorscale="RdYlGn",
            colorbar={"title": objective},
        )
        fig = go.Figure(heat)
        fig.update_layout(title=f"{objective} by {names[0]} and {names[1]} (latest in-sample window; best over the "
                          "other parameters)", xaxis_title=names[0], yaxis_title=names[1])  # fmt: skip
        chart(fig)
    chosen = [f for f in result.folds if f.in_sample_metrics and f.out_of_sample_metrics]
    if chosen:
        labels = [f"fold {f.index}" for f in chosen]
        fig = go.Figure()
        fig.add_bar(name="in sample", x=labels, y=[f.in_sample_metrics[objective] for f in chosen])  # type: ignore[index]
        fig.add_bar(name="out of sample", x=labels, y=[f.out_of_sample_metrics[objective] for f in chosen])  # type: ignore[index]
        fig.update_layout(title=f"{objective}: in sample against out of sample, per fold", barmode="group")
        chart(fig)
    if result.stitched_equity is not None:
        eq = result.stitched_equity
        fig = go.Figure(go.Scatter(x=eq.index, y=eq.to_numpy(), name="stitched out-of-sample equity"))
        fig.update_layout(title="Stitched out-of-sample equity (USDT)")
        chart(fig)

    s = result.summary
    head = [
        ("strategy", result.strategy), ("method", result.search.method),
        ("objectives", ", ".join(result.search.objectives)), ("bars", f"{result.bars:,}"),
        ("period", f"{result.period['start']} to {result.period['end']}"), ("evaluations", f"{result.evaluations:,}"),
        ("recommended", json.dumps(result.recommended)), ("why", result.recommended_reason),
    ]  # fmt: skip
    if result.walk_forward is not None:
        wf = result.walk_forward
        stab = s.get("stability") or {}
        head += [
            ("walk-forward", f"{wf.folds} folds, {wf.window}"),
            ("out-of-sample return", _pct(s.get("out_of_sample_return"))),
            ("current parameters, same bars", _pct(s.get("baseline_return"))),
            ("buy-and-hold, same bars", _pct(s.get("buy_hold_return"))),
            ("out-of-sample max drawdown", _pct(s.get("out_of_sample_max_drawdown"))),
            ("out-of-sample trades", str(s.get("out_of_sample_trades"))),
            ("walk-forward efficiency", _num(s.get("walk_forward_efficiency"))),
            ("deflated Sharpe ratio", _num(s.get("deflated_sharpe"))),
            ("parameter stability", _num(stab.get("score")) + f" (modal share {_num(stab.get('modal_share'), 2)})"),
        ]  # fmt: skip
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in head)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            f.index, f"{f.times['in_sample_start'][:16]} to {f.times['in_sample_end'][:16]}",
            f"{f.times['out_of_sample_start'][:16]} to {f.times['out_of_sample_end'][:16]}",
            json.dumps(f.params), _num((f.in_sample_metrics or {}).get(objective)),
            _num((f.out_of_sample_metrics or {}).get(objective)),
            _pct((f.out_of_sample_metrics or {}).get("total_return")), _pct(f.baseline_return), _pct(f.buy_hold_return),
            int((f.out_of_sample_metrics or {}).get("trades", 0)), _num(f.deflated_sharpe), f.status, f.reason,
        )) + "</tr>"
        for f in result.folds
    )  # fmt: skip
    fold_table = (
        "<h2>Folds</h2><table id='folds'><tr><th>fold</th><th>in sample</th><th>out of sample</th><th>params</th>"
        f"<th>IS {objective}</th><th>OOS {objective}</th><th>OOS return</th><th>current params</th>"
        "<th>buy-and-hold</th><th>OOS trades</th><th>DSR (IS)</th><th>status</th><th>reason</th></tr>"
        f"{rows}</table>"
        if result.folds
        else "<p>No walk-forward: an in-sample search only (no out-of-sample evidence; never promoted).</p>"
    )
    name = title or f"{result.strategy} optimisation"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem}}table{{border-collapse:collapse;margin-bottom:1rem}}
th,td{{padding:.2rem .6rem;border-bottom:1px solid #e2e8f0;text-align:left;font-size:.9rem}}</style></head>
<body><h1>{html.escape(name)}</h1>
<p>{html.escape(data_label)}</p>
<table id="summary">{summary}</table>
{fold_table}
{"".join(parts)}
</body></html>
"""
