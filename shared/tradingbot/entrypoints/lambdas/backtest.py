"""Lambda ``backtest``: the optimisation worker (an EventBridge schedule, or one item of a Map state)."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, parse
from tradingbot.pipeline.contracts import OptimiseRequest
from tradingbot.pipeline.optimise import optimise


@lambda_edge("backtest", correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return optimise(parse(OptimiseRequest, event))
