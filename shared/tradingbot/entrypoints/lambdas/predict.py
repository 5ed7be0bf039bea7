"""Lambda ``predict``: the pipeline state in, the LSTM forecast (or ``model: unavailable``) out, at ``$.predict``."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, parse
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.predict import predict_stage
from tradingbot.pipeline.runtime import get_runtime


@lambda_edge("predict")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return predict_stage(get_runtime(), parse(PipelineState, event)).to_json()
