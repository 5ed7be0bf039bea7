"""Orders and fills: exactly-once rows keyed by client order id, guarded status transitions.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.errors import (
    DuplicateClientOrderId,
    InvalidOrderTransition,
)
from tradingbot.adapters.persistence.models import (
    Account,
    Fill,
    Order,
    OrderEvent,
)

# Which status an order may move to from each status; terminal states have no way out.
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"submitted", "rejected", "failed"}),
    "submitted": frozenset({"open", "partially_filled", "filled", "canceled", "rejected", "failed"}),
    "open": frozenset({"partially_filled", "filled", "canceled"}),
    "partially_filled": frozenset({"partially_filled", "filled", "canceled"}),
    "filled": frozenset(),
    "canceled": frozenset(),
    "rejected": frozenset(),
    "failed": frozenset(),
}


def create_order(
    session: Session,
    *,
    account_id: int,
    client_order_id: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    type: str = "market",
    price: Decimal | None = None,
    reduce_only: bool = False,
    decision_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> Order:
    """Record an order before it is sent, so a crash after sending leaves a row to reconcile.
    ``context``: what the decision knew when it planned the order (e.g. ``reference_price``), kept
    in the row's first event (:func:`order_context`)."""
    stmt = (
        insert(Order)
        .values(
            account_id=account_id,
            decision_id=decision_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            quantity=quantity,
            price=price,
            reduce_only=reduce_only,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=[Order.client_order_id])
        .returning(Order)
    )
    order = session.scalars(stmt).one_or_none()
    if order is None:
        raise DuplicateClientOrderId(client_order_id)
    session.add(OrderEvent(order_id=order.id, from_status=None, to_status="pending", detail=dict(context or {})))
    return order


def order_context(session: Session, client_order_id: str) -> dict[str, Any]:
    """The ``context`` the order was written with (:func:`create_order`; {} for older rows)."""
    stmt = (
        select(OrderEvent.detail)
        .join(Order, OrderEvent.order_id == Order.id)
        .where(Order.client_order_id == client_order_id, OrderEvent.from_status.is_(None))
        .order_by(OrderEvent.id)
        .limit(1)
    )
    return dict(session.scalar(stmt) or {})


def transition_order(
    session: Session,
    client_order_id: str,
    to_status: str,
    *,
    exchange_order_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Order:
    """Move an order to ``to_status`` and append the transition to its history.

    The row is locked (FOR UPDATE) so a fill notification and a cancel racing each other are
    applied one after the other, each checked against the status the other left."""
    order = session.scalars(
        select(Order).where(Order.client_order_id == client_order_id).with_for_update()
    ).one_or_none()
    if order is None:
        raise LookupError(f"no order with client order id {client_order_id!r}")
    if to_status not in ORDER_TRANSITIONS.get(order.status, frozenset()):
        raise InvalidOrderTransition(client_order_id, order.status, to_status)
    session.add(OrderEvent(order_id=order.id, from_status=order.status, to_status=to_status, detail=detail or {}))
    order.status = to_status
    order.updated_at = dt.datetime.now(dt.UTC)
    if exchange_order_id is not None:
        order.exchange_order_id = exchange_order_id
    session.flush()
    return order


def record_fill(
    session: Session,
    *,
    order_id: int,
    exchange_fill_id: str,
    price: Decimal,
    quantity: Decimal,
    fee: Decimal | None = Decimal(0),
    fee_currency: str = "USDT",
) -> bool:
    """Record a fill once (exchanges resend trades on reconnect); True if it was new. ``fee`` None:
    not known yet (stored NULL; the accounting sync writes the venue's figure)."""
    stmt = (
        insert(Fill)
        .values(
            order_id=order_id,
            exchange_fill_id=exchange_fill_id,
            price=price,
            quantity=quantity,
            fee=fee,
            fee_currency=fee_currency,
        )
        .on_conflict_do_nothing(index_elements=[Fill.order_id, Fill.exchange_fill_id])
        .returning(Fill.id)
    )
    return session.scalar(stmt) is not None


def recent_orders(session: Session, account_id: int, limit: int = 1000) -> Sequence[Order]:
    """An account's newest orders first (served by ix_orders_account_id_created_at, read backwards)."""
    stmt = (
        select(Order)
        .where(Order.account_id == account_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )
    return session.scalars(stmt).all()


def order_status(session: Session, client_order_id: str, *, lock: bool = False) -> str | None:
    """The order's stored status, or None without a row; ``lock`` holds the row FOR UPDATE until
    the transaction ends, so a check-then-transition cannot race another worker's transition."""
    stmt = select(Order.status).where(Order.client_order_id == client_order_id)
    return session.scalar(stmt.with_for_update() if lock else stmt)


def order_by_client_id(session: Session, client_order_id: str) -> Order | None:
    return session.scalars(select(Order).where(Order.client_order_id == client_order_id)).one_or_none()


def orders_by_client_ids(session: Session, client_order_ids: Iterable[str]) -> Sequence[Order]:
    """The rows among ``client_order_ids`` that exist (one unique-index probe each, one round trip)."""
    return session.scalars(select(Order).where(Order.client_order_id.in_(list(client_order_ids)))).all()


def filled_quantity(session: Session, order_id: int) -> Decimal:
    """What the recorded fills of an order add up to (0 without fills)."""
    total = session.scalar(select(func.coalesce(func.sum(Fill.quantity), 0)).where(Fill.order_id == order_id))
    return Decimal(total or 0)


def order_fills(session: Session, order_id: int) -> list[tuple[Decimal, Decimal]]:
    """(quantity, price) of each recorded fill of an order."""
    rows = session.execute(select(Fill.quantity, Fill.price).where(Fill.order_id == order_id)).all()
    return [(Decimal(q), Decimal(p)) for q, p in rows]


@dataclass(frozen=True)
class LiveOrderRow:
    """What reconcile needs to look a live order up on the venue (by client id, then in the
    venue's trade list by side, quantity and the time it was submitted)."""

    client_order_id: str
    symbol: str
    type: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime  # for a ``submitted`` row: when it was marked submitted (just before the send)
    side: str = "buy"
    quantity: Decimal = Decimal(0)
    reduce_only: bool = False
    price: Decimal | None = None  # limit price, or a conditional order's trigger price
    decision_id: int | None = None


def orders_in_status(session: Session, account_id: int, statuses: Iterable[str]) -> list[LiveOrderRow]:
    """An account's orders in ``statuses``, oldest first (by id)."""
    rows = session.execute(
        select(
            Order.client_order_id, Order.symbol, Order.type, Order.status, Order.created_at, Order.updated_at,
            Order.side, Order.quantity, Order.reduce_only, Order.price, Order.decision_id,
        )
        .where(Order.account_id == account_id, Order.status.in_(list(statuses)))
        .order_by(Order.id)
    ).all()  # fmt: skip
    return [LiveOrderRow(*row) for row in rows]


def lock_account_orders(session: Session, account_id: int) -> None:
    """Hold the account row FOR UPDATE until the transaction ends: the one place where writing a
    new plan's order rows is serialized per account in PostgreSQL (checked by
    :func:`unresolved_orders` in the same transaction)."""
    session.scalar(select(Account.id).where(Account.id == account_id).with_for_update())


def unresolved_orders(
    session: Session,
    account_id: int,
    symbol: str,
    *,
    exclude: Iterable[str] = (),
    types: Iterable[str] = ("market", "limit"),
) -> list[str]:
    """Client ids of the account's ``pending``/``submitted`` orders of ``types`` on ``symbol``
    (other than ``exclude``): orders whose outcome is not known yet."""
    stmt = select(Order.client_order_id).where(
        Order.account_id == account_id, Order.symbol == symbol, Order.status.in_(("pending", "submitted")),
        Order.type.in_(list(types)), Order.client_order_id.notin_(list(exclude)),
    )  # fmt: skip
    return list(session.scalars(stmt.order_by(Order.id)).all())


def known_exchange_order_ids(session: Session, account_id: int, symbol: str) -> set[str]:
    """The venue order ids already attributed to the account's orders on ``symbol``."""
    stmt = select(Order.exchange_order_id).where(
        Order.account_id == account_id, Order.symbol == symbol, Order.exchange_order_id.is_not(None)
    )
    return {str(x) for x in session.scalars(stmt).all()}
