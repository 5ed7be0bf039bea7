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

The same schedule copies the ingress's refusal tallies from Redis into ``ingress_refusals``
(:func:`scheduled_sweep`, tradingbot.pipeline.ingress.flush_refusals): a refusal flushes them itself
at most once per ``FLUSH_EVERY_S``, so without the schedule the tail of a burst would reach
PostgreSQL only when another refusal arrives. :class:`SweepLoop` is ``serve``'s timer for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.pipeline.ingress import flush_refusals
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.schedule import Every
from tradingbot.pipeline.webhook import redrive

log = logging.getLogger(__name__)

Outcome = Literal["redriven", "start_failed", "running", "closed_without_decision", "too_old"]


@dataclass
class SweepReport:
    """What one sweep found and did, per execution name."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: rows of ``ingress_refusals`` the pass wrote from the Redis tallies (None: not flushed)
    refusals_flushed: int | None = None
    #: why the tallies were not flushed (the exception's class), when they were not
    flush_error: str | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    def to_json(self) -> dict[str, Any]:
        kinds: tuple[Outcome, ...] = ("redriven", "start_failed", "running", "closed_without_decision", "too_old")
        flushed = {"refusals_flushed": self.refusals_flushed, "flush_error": self.flush_error}
        return {"swept": len(self.outcomes)} | {k: self.count(k) for k in kinds} | flushed


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


def scheduled_sweep(rt: Runtime, *, grace_s: float | None = None) -> SweepReport:
    """One scheduled pass (the ``sweeper`` Lambda every minute; ``serve`` at start and every
    ``LOCAL_SWEEP_INTERVAL_S``): the Redis refusal tallies copied into ``ingress_refusals``, then
    :func:`sweep`. A flush that fails (Redis or the database unreachable) is logged and named in the
    report, and the sweep still runs; a failing sweep raises, as :func:`sweep` does."""
    flushed, error = None, None
    try:
        flushed = flush_refusals(rt)
    except Exception as exc:  # the tallies stay in Redis (REFUSAL_TTL_S); the next pass copies them
        error = type(exc).__name__
        log.warning("refusal tallies not flushed: %s", error)
    report = sweep(rt, grace_s=grace_s)
    report.refusals_flushed, report.flush_error = flushed, error
    return report


class SweepLoop(Every[SweepReport]):
    """``tradingbot serve``'s schedule: :func:`scheduled_sweep` every ``every_s`` seconds on a daemon
    thread (what the EventBridge rule does on AWS). A failing pass (the database restarting) is
    logged and handed to ``on_error``; the next one runs on time."""

    def __init__(self, rt: Runtime, *, every_s: float, on_error: Callable[[Exception], None] | None = None) -> None:
        def failed(exc: Exception) -> None:
            log.warning("re-drive sweep failed: %s; the next runs in %.0f s", type(exc).__name__, every_s)
            if on_error is not None:
                on_error(exc)

        super().__init__("redrive-sweeper", lambda: scheduled_sweep(rt), every_s=every_s, on_error=failed)


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
