"""Executions: one Execute-stage outcome per (account, decision), so a retry of a finished decision
answers with the stored report instead of trading again.

Repository functions: the only SQL the product runs. Each takes a Session inside a transaction
(``session_scope``) and never commits itself, so a caller can group alert + decision + order into
one atomic unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import Decision, Execution


def find_execution(session: Session, account_id: int, decision_key: str) -> Execution | None:
    stmt = select(Execution).where(Execution.account_id == account_id, Execution.decision_key == decision_key)
    return session.scalars(stmt).one_or_none()


def store_execution(
    session: Session,
    *,
    account_id: int,
    decision_key: str,
    symbol: str,
    action: str,
    status: str,
    reason: str | None,
    report: dict[str, Any],
    final_statuses: Iterable[str] = (),
) -> bool:
    """Insert or overwrite the decision's outcome (a ``pending`` one is replaced when a retry settles it).
    A stored outcome in ``final_statuses`` is never overwritten (a losing concurrent attempt must not
    replace the winner's result): False when that kept the stored row.
    ``symbol`` and ``action`` are cut to their column widths: a venue symbol never is longer, a
    malformed intent must still leave its rejection on record."""
    values: dict[str, Any] = {
        "symbol": symbol[:32], "action": action[:16], "status": status,
        "reason": reason, "report": report, "updated_at": func.now(),
    }  # fmt: skip
    stmt = insert(Execution).values(account_id=account_id, decision_key=decision_key, **values)
    final = list(final_statuses)
    upsert = stmt.on_conflict_do_update(
        index_elements=["account_id", "decision_key"], set_=values,
        where=Execution.status.notin_(final) if final else None,
    ).returning(Execution.id)  # fmt: skip
    return session.scalar(upsert) is not None


def recent_executions(session: Session, account_id: int, symbol: str, *, limit: int = 20) -> list[Execution]:
    """The account's executions on ``symbol``, newest first (the protective-order check finds the
    decision that opened the current position among them)."""
    stmt = (
        select(Execution)
        .where(Execution.account_id == account_id, Execution.symbol == symbol)
        .order_by(Execution.created_at.desc(), Execution.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt).all())


def executions_in_status(session: Session, account_id: int, statuses: Iterable[str]) -> list[Execution]:
    """The account's executions in ``statuses``, oldest first (reconcile settles ``pending`` ones)."""
    stmt = select(Execution).where(Execution.account_id == account_id, Execution.status.in_(list(statuses)))
    return list(session.scalars(stmt.order_by(Execution.id)).all())


def settle_decision_execution(session: Session, execution_name: str, report: dict[str, Any]) -> bool:
    """Issue 15: write a settled execution report (reconcile made a ``pending`` one final) into its
    decision's ``stages.execution``, where ``tradingbot executions list|show`` and the operator API
    read the outcome, so they stop saying "order pending". Only over a ``pending`` one (jsonb ``||``
    in the database: the other stages are kept). False when no such decision row waits for it
    (none recorded, or a replay with ``--new-order`` whose decision key differs)."""
    doc = json.loads(json.dumps({"execution": report}, default=str))
    stmt = (
        update(Decision)
        .where(Decision.execution_name == execution_name, Decision.stages["execution"]["status"].astext == "pending")
        .values(stages=Decision.stages.op("||")(literal(doc, JSONB)))
        .returning(Decision.id)
    )
    return session.scalar(stmt) is not None
