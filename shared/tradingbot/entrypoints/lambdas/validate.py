"""Lambda ``validate``: rules and risk limits, ``action: trade | reject`` and the intent, at ``$.validation``."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, logger, parse
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.runtime import get_runtime
from tradingbot.pipeline.validate import validate_stage


@lambda_edge("validate")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    out = validate_stage(get_runtime(), parse(PipelineState, event))
    # structured events: CloudWatch metric filters (cdk/tradingbot_infra/alarms.py) count them
    if out.action == "trade":
        logger.info("trade approved", extra={"event": "trade_approved", "symbol": out.intent.symbol})
    else:
        logger.info("trade rejected", extra={"event": "trade_rejected", "reason": out.reason})
    return out.to_json()
