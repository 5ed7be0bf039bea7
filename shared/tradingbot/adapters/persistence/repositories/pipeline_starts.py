"""Pipeline starts (issue 16): the StartExecution outbox of each accepted alert.

Written in the alert's own transaction with the byte-exact execution input, so whoever re-drives the
alert later (TradingView's resend, the sweeper, ``tradingbot serve`` after a restart) starts the same
execution by the same name with the same input, which Step Functions treats as the same request.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.json_rows import json_rows
from tradingbot.adapters.persistence.models import Alert, Decision, PipelineStart


@dataclass(frozen=True)
class PendingStart:
    """An accepted alert that has no decision yet, with what it takes to (re)start its execution."""

    alert_id: int
    execution_name: str
    input: str
    started: bool  # StartExecution answered once
    attempts: int
    age_s: float  # since the alert was accepted


#: one statement for any batch size, the rows as one JSON array (repositories.alerts._INSERT_ALERTS)
_STARTS = "json_to_recordset(CAST(:rows AS json)) AS x(a bigint, n text, i text)"
_INSERT_STARTS = text(
    f"INSERT INTO pipeline_starts (alert_id, execution_name, input) SELECT a, n, i FROM {_STARTS} "
    "ON CONFLICT (alert_id) DO NOTHING"
)
_INSERT_STARTS_STARTED = text(
    "INSERT INTO pipeline_starts (alert_id, execution_name, input, started_at, attempts, last_attempt_at) "
    f"SELECT a, n, i, now(), 1, now() FROM {_STARTS} ON CONFLICT (alert_id) DO NOTHING"
)


def record_starts(session: Session, rows: Sequence[tuple[int, str, str]], *, started: bool = False) -> None:
    """The outbox rows ``(alert id, execution name, input)`` of newly accepted alerts, in one
    statement (the webhook's group commit); a row already there for an alert changes nothing.
    ``started``: their executions are started in this same transaction (the local runtime), so the
    rows are stored as started once (as :func:`mark_started_many` would mark them)."""
    if not rows:
        return
    batch = json_rows([{"a": a, "n": n, "i": i} for a, n, i in rows])
    session.execute(_INSERT_STARTS_STARTED if started else _INSERT_STARTS, {"rows": batch})


def starts_for_alerts(session: Session, alert_ids: Sequence[int]) -> dict[int, PendingStart]:
    """Alert id -> its outbox row while it has no decision (absent once decided, or without a row),
    for many alerts in one query."""
    if not alert_ids:
        return {}
    rows = _pending(session, alert_ids=list(alert_ids), older_than_s=0.0, limit=len(alert_ids))
    return {p.alert_id: p for p in rows}


def undecided_starts(session: Session, *, older_than_s: float, limit: int = 100) -> Sequence[PendingStart]:
    """Accepted alerts with no decision, accepted at least ``older_than_s`` ago, oldest first."""
    return _pending(session, alert_ids=None, older_than_s=older_than_s, limit=limit)


def _pending(
    session: Session, *, alert_ids: list[int] | None, older_than_s: float, limit: int
) -> Sequence[PendingStart]:
    decided = select(Decision.id).where(Decision.execution_name == PipelineStart.execution_name).exists()
    age = func.extract("epoch", func.now() - PipelineStart.created_at)
    stmt = (
        select(PipelineStart.alert_id, PipelineStart.execution_name, PipelineStart.input,
               PipelineStart.started_at, PipelineStart.attempts, age)
        .join(Alert, Alert.id == PipelineStart.alert_id)
        .where(Alert.status == "accepted", ~decided,
               PipelineStart.created_at <= func.now() - dt.timedelta(seconds=older_than_s))
        .order_by(PipelineStart.created_at)
        .limit(limit)
    )  # fmt: skip
    if alert_ids is not None:
        stmt = stmt.where(PipelineStart.alert_id.in_(alert_ids))
    return [
        PendingStart(alert_id=a, execution_name=n, input=i, started=s is not None, attempts=k, age_s=float(g))
        for a, n, i, s, k, g in session.execute(stmt).all()
    ]


def mark_started_many(session: Session, execution_names: Sequence[str]) -> None:
    """StartExecution answered, for many executions in one statement (idempotently: a re-drive of a
    started execution keeps the first time; a name repeated counts once)."""
    if not execution_names:
        return
    session.execute(
        update(PipelineStart)
        .where(PipelineStart.execution_name.in_(set(execution_names)))
        .values(started_at=func.coalesce(PipelineStart.started_at, func.now()), attempts=PipelineStart.attempts + 1,
                last_attempt_at=func.now(), last_error=None)
    )  # fmt: skip


def mark_start_failed(session: Session, execution_name: str, error: str) -> None:
    """StartExecution failed: counted, with the reason; the alert stays ``accepted`` for its re-drive."""
    session.execute(
        update(PipelineStart)
        .where(PipelineStart.execution_name == execution_name)
        .values(attempts=PipelineStart.attempts + 1, last_attempt_at=func.now(), last_error=error[:1000])
    )


def note_start(session: Session, execution_name: str, note: str) -> None:
    """Why the sweeper did not re-drive (kept until the alert is decided)."""
    session.execute(
        update(PipelineStart).where(PipelineStart.execution_name == execution_name).values(note=note[:1000])
    )


def last_start_error(session: Session, execution_name: str) -> tuple[int, str | None, str | None] | None:
    """(attempts, last error, note) of an execution's outbox row; None without one."""
    row = session.execute(
        select(PipelineStart.attempts, PipelineStart.last_error, PipelineStart.note).where(
            PipelineStart.execution_name == execution_name
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2])
