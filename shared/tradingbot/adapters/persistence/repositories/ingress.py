"""Ingress: refused webhook attempts as per-minute tallies and a bounded sample of bodies.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    Alert,
    IngressRefusal,
    IngressRefusalSample,
)


@dataclass(frozen=True)
class RefusalCount:
    """One (minute, reason, source) tally."""

    minute: dt.datetime
    reason: str
    source: str
    count: int
    account_id: int | None = None


def add_refusals(session: Session, counts: Iterable[RefusalCount], *, exact: bool) -> int:
    """Merge tallies into ``ingress_refusals``, one row per (minute, reason, source) whatever the
    number of attempts. ``exact=True``: ``count`` is the running total Redis holds, so the stored
    count becomes the larger of the two (a repeated flush changes nothing); ``exact=False``: ``count``
    attempts are added (Redis was unreachable). Returns the rows touched."""
    rows = [
        {"minute": c.minute, "reason": c.reason[:40], "source": c.source[:64], "count": c.count,
         "account_id": c.account_id}
        for c in counts
    ]  # fmt: skip
    if not rows:
        return 0
    stmt = insert(IngressRefusal).values(rows)
    merged = (
        func.greatest(IngressRefusal.count, stmt.excluded.count)
        if exact
        else IngressRefusal.count + stmt.excluded.count
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[IngressRefusal.minute, IngressRefusal.reason, IngressRefusal.source],
        set_={
            "count": merged,
            "last_at": func.now(),
            "account_id": func.coalesce(stmt.excluded.account_id, IngressRefusal.account_id),
        },
    )
    session.execute(stmt)
    return len(rows)


def add_refusal_sample(session: Session, *, reason: str, source: str, message: str, body: str, body_bytes: int) -> None:
    """Keep one refused body (the caller truncates and masks it and bounds how many per hour)."""
    session.add(
        IngressRefusalSample(
            reason=reason[:40], source=source[:64], message=message[:300], body=body[:1024], body_bytes=body_bytes
        )
    )


def refusal_samples_since(session: Session, *, reason: str, since: dt.datetime) -> int:
    """How many bodies of ``reason`` were kept since ``since`` (the bound when Redis is unreachable)."""
    stmt = select(func.count()).where(IngressRefusalSample.reason == reason, IngressRefusalSample.at >= since)
    return int(session.scalar(stmt) or 0)


def refusals_since(session: Session, since: dt.datetime) -> Sequence[IngressRefusal]:
    """Tallies from ``since`` on, newest minute first."""
    stmt = (
        select(IngressRefusal)
        .where(IngressRefusal.minute >= since)
        .order_by(IngressRefusal.minute.desc(), IngressRefusal.count.desc())
    )
    return session.scalars(stmt).all()


def refusal_samples(session: Session, *, limit: int = 20) -> Sequence[IngressRefusalSample]:
    return session.scalars(select(IngressRefusalSample).order_by(IngressRefusalSample.id.desc()).limit(limit)).all()


def purge_refusals(session: Session, *, older_than: dt.datetime) -> int:
    """Drop tallies and samples older than ``older_than``; returns the rows removed."""
    tallies = session.execute(
        delete(IngressRefusal).where(IngressRefusal.minute < older_than).returning(IngressRefusal.id)
    )
    samples = session.execute(
        delete(IngressRefusalSample).where(IngressRefusalSample.at < older_than).returning(IngressRefusalSample.id)
    )
    return len(tallies.all()) + len(samples.all())


def alert_keys_recorded(session: Session, idempotency_keys: Sequence[str]) -> set[str]:
    """Those of ``idempotency_keys`` whose alert is already stored (redeliveries), in one query."""
    if not idempotency_keys:
        return set()
    stmt = select(Alert.idempotency_key).where(Alert.idempotency_key.in_(set(idempotency_keys)))
    return set(session.scalars(stmt))
