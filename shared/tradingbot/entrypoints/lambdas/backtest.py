"""Lambda ``backtest``: the optimisation worker (one invocation per strategy, or the plan / fold /
aggregate steps of statemachines/optimise.asl.json; see tradingbot.pipeline.contracts.OptimiseRequest)."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, parse
from tradingbot.pipeline.contracts import OptimiseRequest
from tradingbot.pipeline.optimise import optimise


@lambda_edge("backtest", correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # the Plan state passes the execution's input whole under "request" beside its own keys
    if isinstance(event, dict) and isinstance(event.get("request"), dict):
        event = event["request"] | {k: v for k, v in event.items() if k != "request"}
    return optimise(parse(OptimiseRequest, event))
