"""The optimisation worker (the backtest function): a grid search for one strategy, from an
EventBridge schedule or one item of a Map state. Not a stage of the trading pipeline."""

from __future__ import annotations

import json
from typing import Any

from tradingbot.adapters.history import HistoryError, HistoryStore, resolve_candles
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import OptimiseRequest


def optimise(req: OptimiseRequest, store: HistoryStore | None = None) -> dict[str, Any]:
    """Event: ``{"strategy": "ema_crossover", "grid": {"fast": [5, 10], "slow": [50, 100]},
    "top": 5, "sort_by": "sharpe", "symbol": "ETHUSDT", "timeframe": "1h"}``; a scheduled event
    without ``strategy`` optimises every strategy over a coarse grid. Candles: the market's
    downloaded history (``tradingbot data download``; on AWS under s3://$ARTIFACTS_BUCKET/data/history),
    else the packaged offline sample; the result's ``data`` says which."""
    from tradingbot.domain.backtest import run_grid
    from tradingbot.domain.indicators import Indicators
    from tradingbot.domain.strategies import REGISTRY, StrategyError, get_strategy

    try:
        choice = resolve_candles(req.symbol, req.timeframe, req.exchange, store=store)
    except HistoryError as exc:
        raise StageError(str(exc)) from None
    candles = choice.candles
    ind = Indicators(candles)
    names = [req.strategy] if req.strategy else list(REGISTRY)
    results: dict[str, Any] = {}
    for name in names:
        try:
            strat = get_strategy(name)
        except StrategyError as exc:
            raise StageError(str(exc)) from None
        grid = req.grid or {p.name: p.values()[:: max(1, len(p.values()) // 4)] for p in strat.params}
        combos = list(strat.grid(grid))[: req.max_combinations]
        table = run_grid(candles, strat, combos, indicators=ind)
        if req.sort_by not in table.columns:
            raise StageError(f"sort_by {req.sort_by!r}: choose one of {', '.join(table.columns)}")
        best = table.sort_values(req.sort_by, ascending=req.sort_by == "max_drawdown").head(req.top)
        results[name] = {"combinations": len(combos), "best": json.loads(best.to_json(orient="records"))}
    return {
        "data": choice.label,
        "data_kind": choice.kind,
        "bars": len(candles),
        "sort_by": req.sort_by,
        "results": results,
    }
