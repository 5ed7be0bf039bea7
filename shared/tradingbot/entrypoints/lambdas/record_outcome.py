"""Lambda ``record_outcome``: the decision record and the alert's final status, on every path."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas import business_metrics
from tradingbot.entrypoints.lambdas.edge import emf_enabled, lambda_edge, metrics, parse
from tradingbot.pipeline.contracts import RecordRequest
from tradingbot.pipeline.record import record_outcome_stage
from tradingbot.pipeline.runtime import get_runtime


@lambda_edge("record_outcome", correlation_id_path="execution_name")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    req = parse(RecordRequest, event)
    result = record_outcome_stage(get_runtime(), req).to_json()
    if emf_enabled():  # business metrics (issue 17): outcomes, rejecting rule, fills, slippage, voters
        business_metrics.record(metrics, req)
    return result
