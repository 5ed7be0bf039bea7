"""Lambda ``notify``: the trade from the pipeline state (at ``$.notify``), or CloudWatch alarms through SNS."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, parse
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.notify import notify_alarms, notify_stage
from tradingbot.pipeline.runtime import get_runtime


@lambda_edge("notify")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records")
    if records:  # a CloudWatch alarm through SNS
        return notify_alarms(get_runtime(), list(records)).to_json()
    return notify_stage(get_runtime(), parse(PipelineState, event)).to_json()
