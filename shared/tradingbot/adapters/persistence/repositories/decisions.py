"""Decisions: one row per alert with every stage's output and the outcome.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    Decision,
)


def record_decision(
    session: Session,
    *,
    execution_name: str,
    account_id: int,
    symbol: str,
    inputs: dict[str, Any],
    alert_id: int | None = None,
    stages: dict[str, Any] | None = None,
    final_action: str | None = None,
    rejection_reason: str | None = None,
) -> Decision:
    """One row per pipeline execution; a replayed execution (same name) updates its row."""
    values: dict[str, Any] = {
        "account_id": account_id,
        "symbol": symbol,
        "inputs": inputs,
        "alert_id": alert_id,
        "stages": stages or {},
        "final_action": final_action,
        "rejection_reason": rejection_reason,
    }
    finished = func.now() if final_action is not None else None
    stmt = (
        insert(Decision)
        .values(execution_name=execution_name, finished_at=finished, **values)
        .on_conflict_do_update(index_elements=[Decision.execution_name], set_={**values, "finished_at": finished})
        .returning(Decision)
    )
    return session.scalars(stmt, execution_options={"populate_existing": True}).one()


def recent_decisions(session: Session, limit: int = 20) -> Sequence[Decision]:
    """The newest decisions first."""
    return session.scalars(select(Decision).order_by(Decision.id.desc()).limit(limit)).all()


def find_decision(session: Session, ident: str) -> Decision | None:
    """A decision by its row id (all digits) or by its execution name."""
    stmt = select(Decision).where(Decision.execution_name == ident)
    if ident.isdigit():
        stmt = select(Decision).where(Decision.id == int(ident))
    return session.scalars(stmt).one_or_none()


def attach_execution_trace(session: Session, execution_name: str, meta: dict[str, Any]) -> None:
    """Merge ``{"_execution": meta}`` into the decision's ``stages`` (jsonb ``||``, in the database:
    the stage outputs written meanwhile by the pipeline are kept). No row: nothing happens.
    ``meta`` goes through JSON first, so datetimes and Decimals arrive as strings."""
    doc = json.loads(json.dumps({"_execution": meta}, default=str))
    session.execute(
        update(Decision)
        .where(Decision.execution_name == execution_name)
        .values(stages=Decision.stages.op("||")(literal(doc, JSONB)))
    )
