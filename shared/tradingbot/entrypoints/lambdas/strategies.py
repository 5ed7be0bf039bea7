"""Lambda ``strategies`` (a container image: pandas, numba): every strategy's latest signal and the
alert's strategy backtested, at ``$.strategies``."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, parse
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.runtime import get_runtime
from tradingbot.pipeline.strategies import strategies_stage


@lambda_edge("strategies")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return strategies_stage(get_runtime(), parse(PipelineState, event)).to_json()
