"""Lambda ``reconcile``: every minute (EventBridge, cdk/tradingbot_infra/reconcile.py), one reconcile
pass over every enabled account (tradingbot.pipeline.reconcile.scheduled_pass): orders whose outcome
was unknown, positions, protective orders (placed, resized, cancelled), pending executions settled.

Metrics (CloudWatch EMF, namespace TradingBot, dimension service=tradingbot): ``ReconcileDrift``
(everything found), ``ReconcileDriftUnfixed`` (what the pass could not repair, or only reports) and
``ReconcileOrphans`` (open orders on the venue with no row of ours, each also an unfixed drift);
the ``ReconcileDrift`` alarm (cdk/tradingbot_infra/alarms.py) watches the second. Each unfixed
drift is also one WARNING log line (``event: reconcile_drift``) naming the account and the key.
"""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.lambdas.edge import add_count, lambda_edge, logger
from tradingbot.pipeline.reconcile import drift_counts, scheduled_pass
from tradingbot.pipeline.runtime import get_runtime


@lambda_edge("reconcile", correlation_id_path="id")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    reports = scheduled_pass(get_runtime())
    if reports is None:  # another pass is still running: this minute is covered by it
        return {"skipped": True, "accounts": 0, "drift": 0, "drift_unfixed": 0}
    found, unfixed = drift_counts(reports)
    add_count("ReconcileDrift", found)
    add_count("ReconcileDriftUnfixed", unfixed)
    add_count("ReconcileOrphans", sum(len(r.orphans) for r in reports))  # venue orders without a row: reported only
    for r in reports:
        for d in r.drifts:
            if not d.fixed:
                logger.warning(
                    "reconcile drift",
                    extra={"event": "reconcile_drift", "account_id": r.account_id, "kind": d.kind, "key": d.key,
                           "stored": d.stored, "exchange": d.exchange, "repair": d.repair},
                )  # fmt: skip
    logger.info("reconcile pass", extra={"event": "reconcile", "accounts": len(reports), "drift": found,
                                         "drift_unfixed": unfixed})  # fmt: skip
    return {"skipped": False, "accounts": len(reports), "drift": found, "drift_unfixed": unfixed,
            "reports": [r.to_dict() for r in reports]}  # fmt: skip
