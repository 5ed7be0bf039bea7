"""The re-drive sweeper (issue 16): accepted alerts that have no decision after a grace period are
started again by their execution name and stored input, or the reason they are not is stored.

Runs every minute on AWS (EventBridge -> the ``sweeper`` Lambda) and, in ``tradingbot serve``, at
start and periodically. What it does with each undecided alert:

* never started, or its start failed (the webhook answered 503): StartExecution again, by the same
  name and input (idempotent: https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html);
* started, but Step Functions has no such execution (``ExecutionDoesNotExist``): started again;
* started and still ``RUNNING``: left alone;
* started and closed without a decision (its Record stage never ran): the name is spent (a closed
  execution's name cannot start again), so the alert is marked ``failed`` with that reason;
* accepted longer ago than ``REDRIVE_MAX_AGE_S``: not traded on that late; marked ``failed``.

Orders stay exactly once whoever re-drives: the Execute stage derives client order ids from the
alert's idempotency key (tradingbot.pipeline.execute), so a second run finds its order placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.webhook import redrive

Outcome = Literal["redriven", "start_failed", "running", "closed_without_decision", "too_old"]


@dataclass
class SweepReport:
    """What one sweep found and did, per execution name."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    def to_json(self) -> dict[str, Any]:
        kinds: tuple[Outcome, ...] = ("redriven", "start_failed", "running", "closed_without_decision", "too_old")
        return {"swept": len(self.outcomes)} | {k: self.count(k) for k in kinds}


def sweep(rt: Runtime, *, grace_s: float | None = None, limit: int | None = None) -> SweepReport:
    """One pass over the undecided accepted alerts (oldest first, at most ``limit``).
    ``grace_s`` defaults to ``REDRIVE_GRACE_S``; ``serve`` passes 0 at start, when nothing of its
    own can be running yet."""
    s = rt.settings
    grace = s.redrive_grace_s if grace_s is None else grace_s
    report = SweepReport()
    with session_scope(rt.engine()) as session:
        pending = repo.undecided_starts(session, older_than_s=grace, limit=limit or s.redrive_batch)
    for p in pending:
        report.outcomes[p.execution_name] = _one(rt, p)
    return report


def _one(rt: Runtime, p: repo.PendingStart) -> Outcome:
    if p.age_s > rt.settings.redrive_max_age_s:
        _give_up(rt, p, f"not re-driven: accepted {p.age_s:.0f} s ago, over REDRIVE_MAX_AGE_S "
                        f"({rt.settings.redrive_max_age_s:.0f} s); too late to trade on")  # fmt: skip
        return "too_old"
    if p.started:
        status = _execution_status(rt, p.execution_name)
        if status == "RUNNING":
            return "running"
        if status is not None:
            _give_up(rt, p, f"execution {p.execution_name} ended {status} without a decision record; "
                            "a closed execution's name cannot start again")  # fmt: skip
            return "closed_without_decision"
    result = redrive(rt, p)
    return "redriven" if result.status == 202 else "start_failed"


def _execution_status(rt: Runtime, name: str) -> str | None:
    """The execution's status; None when Step Functions has no execution of that name."""
    sfn = rt.sfn()
    arn = f"{rt.settings.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
    try:
        return str(sfn.describe_execution(executionArn=arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def _give_up(rt: Runtime, p: repo.PendingStart, reason: str) -> None:
    with session_scope(rt.engine()) as s:
        repo.note_start(s, p.execution_name, reason)
        repo.set_alert_status(s, p.alert_id, "failed", reason)
