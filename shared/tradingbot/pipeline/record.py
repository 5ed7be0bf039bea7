"""The Record stage: the decision record (inputs, every stage's result, the final action and its
reason) and the alert's final status. The state machine calls it on every path: traded, rejected,
failed. It is an upsert by execution name, so a retry after a timeout writes the same row again."""

from __future__ import annotations

import json
from typing import Any

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.pipeline.contracts import RESULT_KEYS, Outcome, PipelineState, RecordRequest, RecordResult
from tradingbot.pipeline.runtime import Runtime

#: what ``decisions.stages`` keeps: every stage's result (``record`` is this stage's own)
STAGE_KEYS = tuple(k for k in RESULT_KEYS if k != "record")
_INPUT_KEYS = ("alert", "alert_id", "idempotency_key", "received_at")
_ALERT_STATUS = {"traded": "processed", "rejected": "rejected", "failed": "failed"}


def record_outcome_stage(rt: Runtime, req: RecordRequest) -> RecordResult:
    state = req.state
    execution_name = req.execution_name or state.idempotency_key
    reason = _reason(req.outcome, state)
    dumped = state.dump()
    stages = {k: dumped[k] for k in STAGE_KEYS if k in dumped}
    inputs = {k: dumped.get(k) for k in _INPUT_KEYS}
    with session_scope(rt.engine()) as s:
        decision = repo.record_decision(
            s, execution_name=execution_name, account_id=state.account_id, symbol=state.alert.symbol,
            inputs=inputs, alert_id=state.alert_id, stages=stages, final_action=_final_action(req.outcome, state),
            rejection_reason=reason,
        )  # fmt: skip
        if state.alert_id is not None:
            repo.set_alert_status(s, state.alert_id, _ALERT_STATUS[req.outcome], reason)
        return RecordResult(decision_id=decision.id, outcome=req.outcome, reason=reason)


def _reason(outcome: Outcome, state: PipelineState) -> str | None:
    if outcome == "rejected":
        return (state.validation.reason if state.validation is not None else None) or "rejected"
    if outcome == "failed":
        err = state.error
        return f"{err.Error if err else 'Error'}: {_cause(err.Cause if err else None)}"[:1000]
    return None


def _final_action(outcome: Outcome, state: PipelineState) -> str:
    """decisions.final_action: what was done (long / short / close), or rejected, or error."""
    if outcome == "rejected":
        return "rejected"
    if outcome == "failed":
        return "error"
    direction = state.validation.intent.direction if state.validation is not None else None
    return {"long": "long", "short": "short", "flat": "close"}.get(str(direction), "hold")


def _cause(cause: Any) -> str:
    """Step Functions passes a Lambda error's Cause as a JSON string: keep its message."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except json.JSONDecodeError:
            return cause
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage", cause))
    return str(cause)
