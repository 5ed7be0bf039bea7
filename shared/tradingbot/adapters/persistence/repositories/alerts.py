"""Alerts: every webhook attempt with its status and reason; de-duplicated by idempotency key.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.json_rows import json_rows
from tradingbot.adapters.persistence.models import (
    ALERT_STATUSES,
    Alert,
)


@dataclass(frozen=True)
class RecordedAlert:
    id: int
    created: bool  # False: this idempotency key was already recorded (a TradingView retry)


@dataclass(frozen=True)
class AlertRow:
    """One webhook attempt to record (:func:`record_alerts`)."""

    idempotency_key: str
    raw_body: str
    source_ip: str | None
    account_id: int | None
    status: str = "received"
    reason: str | None = None


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
    row = AlertRow(idempotency_key, raw_body, source_ip, account_id, status, reason)
    return record_alerts(session, [row])[0]


#: One statement whatever the batch size: the rows as one JSON array (``json_to_recordset``), so the
#: SQL text, its compiled form and the driver's parse of it are the same for every batch, and the
#: values cross as one text parameter that ``json.dumps`` writes in C. A multi-row ``VALUES`` list is
#: a new statement per batch size (compiled by SQLAlchemy, scanned by pg8000 each time), and text
#: arrays are escaped by pg8000 a character at a time: each was a fifth or more of the webhook's CPU
#: in a burst (yappi under bench_burst; ADR 0021).
_INSERT_ALERTS = text(
    "INSERT INTO alerts (idempotency_key, raw_body, source_ip, account_id, status, reason) "
    "SELECT k, b, ip, a, st, r FROM json_to_recordset(CAST(:rows AS json)) "
    "AS x(k text, b text, ip inet, a bigint, st text, r text) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
)


def record_alerts(session: Session, rows: Sequence[AlertRow]) -> list[RecordedAlert]:
    """Record many attempts in one statement (the webhook's group commit), each once per idempotency
    key: one result per row, in order. A key already stored, or repeated within ``rows``, is
    ``created=False`` for every row but the one that stored it."""
    for r in rows:
        if r.status not in ALERT_STATUSES:
            raise ValueError(f"unknown alert status {r.status!r}")
    if not rows:
        return []
    batch = json_rows([{"k": r.idempotency_key, "b": r.raw_body, "ip": r.source_ip, "a": r.account_id,
                        "st": r.status, "r": r.reason} for r in rows])  # fmt: skip
    created = {key: new_id for new_id, key in session.execute(_INSERT_ALERTS, {"rows": batch}).all()}
    # The competing inserts have committed (ON CONFLICT waited for them), so a fresh statement sees them.
    missing = {r.idempotency_key for r in rows} - created.keys()
    existing = (
        dict(session.execute(select(Alert.idempotency_key, Alert.id).where(Alert.idempotency_key.in_(missing))).all())
        if missing
        else {}
    )
    out: list[RecordedAlert] = []
    for r in rows:
        if r.idempotency_key in created:
            out.append(RecordedAlert(created.pop(r.idempotency_key), created=True))
            existing[r.idempotency_key] = out[-1].id  # a repeat later in this batch is a duplicate of it
        else:
            out.append(RecordedAlert(existing[r.idempotency_key], created=False))
    return out


def set_alert_status(session: Session, alert_id: int, status: str, reason: str | None = None) -> None:
    if status not in ALERT_STATUSES:
        raise ValueError(f"unknown alert status {status!r}")
    session.execute(update(Alert).where(Alert.id == alert_id).values(status=status, reason=reason))


def alerts_by_status(session: Session, status: str, limit: int = 100) -> Sequence[Alert]:
    stmt = select(Alert).where(Alert.status == status).order_by(Alert.received_at.desc()).limit(limit)
    return session.scalars(stmt).all()
