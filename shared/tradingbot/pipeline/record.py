"""The Record stage: the decision record (inputs, every stage's result, the final action and its
reason) and the alert's final status. The state machine calls it on every path: traded, rejected,
failed. It is an upsert by execution name, so a retry after a timeout writes the same row again.

The record tells what happened, not what was intended: on the ``traded`` path the Execute stage's
report decides. A venue that refused the order (``status: rejected``, e.g. ``no_price`` or
``insufficient_margin``) makes the decision ``rejected`` with ``execute: <the venue's reason>`` and
the alert ``rejected`` with the same reason; an order with nothing to do (``no_op``) is a ``hold``;
an order whose outcome is not known yet (``pending``, left for reconcile) keeps its direction and
says so in the reason. The outcome returned (``$.record.outcome``) follows: ``rejected`` for a
venue's refusal."""

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
    outcome, final_action, reason = _true_outcome(req.outcome, state)
    dumped = state.dump()
    stages = {k: dumped[k] for k in STAGE_KEYS if k in dumped}
    inputs = {k: dumped.get(k) for k in _INPUT_KEYS}
    with session_scope(rt.engine()) as s:
        decision = repo.record_decision(
            s, execution_name=execution_name, account_id=state.account_id, symbol=state.alert.symbol,
            inputs=inputs, alert_id=state.alert_id, stages=stages, final_action=final_action,
            rejection_reason=reason,
        )  # fmt: skip
        if state.alert_id is not None:
            repo.set_alert_status(s, state.alert_id, _ALERT_STATUS[outcome], reason)
        return RecordResult(decision_id=decision.id, outcome=outcome, reason=reason)


def _true_outcome(outcome: Outcome, state: PipelineState) -> tuple[Outcome, str, str | None]:
    """(outcome, decisions.final_action, reason): the path the state machine took, corrected by the
    Execute stage's report on the traded path (see the module docstring)."""
    if outcome == "rejected":
        return outcome, "rejected", (state.validation.reason if state.validation is not None else None) or "rejected"
    if outcome == "failed":
        err = state.error
        return outcome, "error", f"{err.Error if err else 'Error'}: {_cause(err.Cause if err else None)}"[:1000]
    direction = state.validation.intent.direction if state.validation is not None else None
    action = {"long": "long", "short": "short", "flat": "close"}.get(str(direction), "hold")
    report = state.execution
    if report is None:
        return outcome, action, None
    why = report.reason or next((leg.reason for leg in report.orders if leg.reason), None)
    if report.status == "rejected":
        return "rejected", "rejected", f"execute: {why or 'the venue rejected the order'}"[:1000]
    if report.status == "no_op":
        return outcome, "hold", f"execute: no order: {why}" if why else "execute: no order"
    if report.status == "pending":
        pending = f"execute: order pending (reconcile resolves it): {why or 'outcome not known yet'}"
        return outcome, action, pending[:1000]
    return outcome, action, None


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
