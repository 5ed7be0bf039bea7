"""Positions: what we believe is open per account and symbol, kept equal to the venue's.

Repository functions: the only SQL the product runs. Each takes a Session inside a transaction
(``session_scope``) and never commits itself, so a caller can group alert + decision + order into
one atomic unit.

The venue is the truth for positions: ``sync_positions`` rewrites the stored open rows from what
the exchange reports, closing a row (rather than editing it) when the side changed, so the history
keeps both positions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import Position
from tradingbot.domain.exchange import Position as LivePosition


def open_positions(
    session: Session, account_id: int, *, symbols: Sequence[str] | None = None, lock: bool = False
) -> Sequence[Position]:
    """The account's open rows (``closed_at IS NULL``), optionally for some symbols only.

    ``lock`` takes them FOR UPDATE: a reconcile and an Execute stage syncing the same account then
    apply their views one after the other instead of both inserting a new open row."""
    stmt = select(Position).where(Position.account_id == account_id, Position.closed_at.is_(None))
    if symbols is not None:
        stmt = stmt.where(Position.symbol.in_(list(symbols)))
    return session.scalars(stmt.with_for_update() if lock else stmt).all()


def position_matches(stored: Position | None, live: LivePosition | None) -> bool:
    """Same side and size (flat on both sides also matches); entry price drift is not drift."""
    if stored is None or live is None:
        return stored is None and live is None
    return stored.side == live.side and Decimal(stored.quantity) == live.quantity


def sync_positions(
    session: Session, account_id: int, positions: Sequence[LivePosition], *, symbols: Sequence[str] | None = None
) -> list[str]:
    """Make the stored open positions equal the venue's (for ``symbols``, or all); returns what changed.
    A position that changed side is closed and a new row opened, so history keeps both."""
    stored = {p.symbol: p for p in open_positions(session, account_id, symbols=symbols, lock=True)}
    venue = {p.symbol: p for p in positions if symbols is None or p.symbol in symbols}
    now = dt.datetime.now(dt.UTC)
    changes = []
    for symbol, row in stored.items():
        theirs = venue.get(symbol)
        if theirs is None or theirs.side != row.side:
            row.closed_at = now
            changes.append(f"closed {symbol} {row.side}")
        elif not position_matches(row, theirs):
            row.quantity, row.entry_price, row.leverage = theirs.quantity, theirs.entry_price, theirs.leverage
            changes.append(f"resized {symbol} to {theirs.quantity}")
    # the closes must reach the database before the inserts: one open row per (account, symbol)
    session.flush()
    for symbol, live in venue.items():
        existing = stored.get(symbol)
        if existing is None or existing.closed_at is not None:
            session.add(Position(account_id=account_id, symbol=symbol, side=live.side, quantity=live.quantity,
                                 entry_price=live.entry_price, leverage=live.leverage))  # fmt: skip
            changes.append(f"opened {symbol} {live.side}")
    session.flush()
    return changes


def realized_pnl_since(session: Session, account_id: int, since: dt.datetime) -> Decimal:
    """The account's realized PnL over the positions closed at or after ``since`` (0 if none).
    ``positions.realized_pnl`` is written by the accounting sync (pipeline/accounting.py: the
    position's trades' venue PnL - fees + funding); the daily-loss rule reads the per-day sums of
    ``repositories.accounting.net_pnl_since`` instead, which also count partial closes."""
    stmt = select(func.coalesce(func.sum(Position.realized_pnl), 0)).where(
        Position.account_id == account_id, Position.closed_at >= since
    )
    return Decimal(session.scalar(stmt) or 0)
