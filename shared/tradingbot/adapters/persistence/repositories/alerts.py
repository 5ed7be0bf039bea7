"""Alerts: every webhook attempt with its status and reason; de-duplicated by idempotency key.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    ALERT_STATUSES,
    Alert,
)


@dataclass(frozen=True)
class RecordedAlert:
    id: int
    created: bool  # False: this idempotency key was already recorded (a TradingView retry)


def record_alert(
    session: Session,
    *,
    idempotency_key: str,
    raw_body: str,
    source_ip: str | None,
    account_id: int | None,
    status: str = "received",
    reason: str | None = None,
) -> RecordedAlert:
    """Record a webhook once per idempotency key, however many processes receive it at once."""
    if status not in ALERT_STATUSES:
        raise ValueError(f"unknown alert status {status!r}")
    stmt = (
        insert(Alert)
        .values(
            idempotency_key=idempotency_key,
            raw_body=raw_body,
            source_ip=source_ip,
            account_id=account_id,
            status=status,
            reason=reason,
        )
        .on_conflict_do_nothing(index_elements=[Alert.idempotency_key])
        .returning(Alert.id)
    )
    new_id = session.scalar(stmt)
    if new_id is not None:
        return RecordedAlert(new_id, created=True)
    # The competing insert has committed (ON CONFLICT waited for it), so a fresh statement sees it.
    existing = session.scalar(select(Alert.id).where(Alert.idempotency_key == idempotency_key))
    assert existing is not None
    return RecordedAlert(existing, created=False)


def set_alert_status(session: Session, alert_id: int, status: str, reason: str | None = None) -> None:
    if status not in ALERT_STATUSES:
        raise ValueError(f"unknown alert status {status!r}")
    session.execute(update(Alert).where(Alert.id == alert_id).values(status=status, reason=reason))


def alerts_by_status(session: Session, status: str, limit: int = 100) -> Sequence[Alert]:
    stmt = select(Alert).where(Alert.status == status).order_by(Alert.received_at.desc()).limit(limit)
    return session.scalars(stmt).all()
