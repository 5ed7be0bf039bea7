"""Lambda ``sweeper``: every minute (EventBridge), re-drive accepted alerts that have no decision
after ``REDRIVE_GRACE_S`` (tradingbot.pipeline.redrive), or store why not, and copy the ingress's
refusal tallies from Redis into ``ingress_refusals`` (tradingbot.pipeline.ingress.flush_refusals).

It ships as a small zip Lambda beside the webhook: the same import graph (no pandas, no numba).
"""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import lambda_edge, logger
from tradingbot.pipeline.redrive import scheduled_sweep
from tradingbot.pipeline.runtime import get_runtime


@lambda_edge("sweeper", correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = scheduled_sweep(get_runtime()).to_json()
    # a metric filter can count "alerts_redriven" the way "signal_accepted" is counted
    logger.info("re-drive sweep", extra={"event": "alerts_redriven", **report})
    return report
