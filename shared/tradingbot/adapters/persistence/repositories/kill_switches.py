"""The durable kill switch: one ``kill_switches`` row per engaged scope ("global" or
"account:<id>"), read and written by :mod:`tradingbot.pipeline.kill_switch` (Redis is its fast path).

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import KillSwitch


def engage_kill_switch(session: Session, scope: str, reason: str) -> None:
    """Engage ``scope`` with ``reason`` (an engaged scope gets the new reason)."""
    stmt = insert(KillSwitch).values(scope=scope, reason=reason)
    session.execute(stmt.on_conflict_do_update(index_elements=["scope"], set_={"reason": reason}))


def release_kill_switch(session: Session, scope: str) -> None:
    """Release ``scope`` (nothing happens when it is not engaged)."""
    session.execute(delete(KillSwitch).where(KillSwitch.scope == scope))


def kill_switch_reasons(session: Session, scopes: Iterable[str]) -> dict[str, str]:
    """The engaged scopes among ``scopes`` and their reasons."""
    rows = session.scalars(select(KillSwitch).where(KillSwitch.scope.in_(list(scopes))))
    return {k.scope: k.reason for k in rows}
