"""Lambda ``vote``: one seat of the AI ensemble (the Vote Task's Parameters in, one ballot out)."""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, parse
from tradingbot.pipeline.contracts import VoteRequest
from tradingbot.pipeline.runtime import get_runtime
from tradingbot.pipeline.vote import vote_stage


@lambda_edge("vote")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return vote_stage(get_runtime(), parse(VoteRequest, event)).model_dump(mode="json")
