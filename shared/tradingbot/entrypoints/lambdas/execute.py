"""Lambda ``execute``: the validated intent -> orders, exactly once; the report at ``$.execution``."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, logger, parse
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.execute import execute_stage
from tradingbot.pipeline.runtime import get_runtime


@lambda_edge("execute")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = execute_stage(get_runtime(), parse(PipelineState, event))
    if report.status in ("filled", "partially_filled"):
        logger.info("order placed", extra={"event": "order_placed", "status": report.status, "symbol": report.symbol})
    elif report.status == "rejected":
        logger.warning("order rejected", extra={"event": "order_rejected", "reason": report.reason})
    return report.to_json()
