"""The paper venue's state: wallets, per-symbol settings, one-way positions, the order book.

Repository functions: the only SQL the product runs. Each takes a Session inside a transaction
(``session_scope``) and never commits itself; :class:`tradingbot.adapters.exchange.paper.PaperExchange`
opens one transaction per venue call and takes the account's wallet row first
(:func:`lock_paper_wallet`), so concurrent Lambdas serialise per account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    PaperFundingPayment,
    PaperOrder,
    PaperPosition,
    PaperSymbolSetting,
    PaperWallet,
)


def lock_paper_wallet(session: Session, account_id: int, initial_balance: Decimal) -> PaperWallet:
    """The account's wallet row, locked FOR UPDATE for the transaction; created with
    ``initial_balance`` on first use (``ON CONFLICT DO NOTHING``: two first calls cannot both create it).
    The existing row is tried first: one round trip on every call but the first (the matcher's hot path)."""
    locked = select(PaperWallet).where(PaperWallet.account_id == account_id).with_for_update()
    wallet = session.scalars(locked).one_or_none()
    if wallet is not None:
        return wallet
    stmt = insert(PaperWallet).values(account_id=account_id, balance=initial_balance)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["account_id"]))
    return session.scalars(locked).one()


def set_paper_symbol_setting(
    session: Session, account_id: int, symbol: str, *, leverage: int | None = None, margin_mode: str | None = None
) -> None:
    """Upsert the given settings of one symbol; the ones left None keep their values (or defaults)."""
    values: dict[str, Any] = {k: v for k, v in (("leverage", leverage), ("margin_mode", margin_mode)) if v is not None}
    if not values:
        return
    stmt = insert(PaperSymbolSetting).values(account_id=account_id, symbol=symbol, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["account_id", "symbol"], set_=values))


def paper_leverage(session: Session, account_id: int, symbol: str) -> int:
    """The symbol's leverage setting; 1 until ``set_leverage`` was called, as on a venue."""
    setting = session.get(PaperSymbolSetting, (account_id, symbol))
    return setting.leverage if setting is not None else 1


def paper_positions(session: Session, account_id: int) -> list[PaperPosition]:
    """The account's non-flat positions (a flat one keeps its row with quantity 0)."""
    stmt = select(PaperPosition).where(PaperPosition.account_id == account_id, PaperPosition.quantity > 0)
    return list(session.scalars(stmt))


def paper_position(session: Session, account_id: int, symbol: str, *, lock: bool = False) -> PaperPosition | None:
    return session.get(PaperPosition, (account_id, symbol), with_for_update=lock or None)


def upsert_paper_position(
    session: Session, account_id: int, symbol: str, *, side: str, quantity: Decimal, entry_price: Decimal, leverage: int
) -> None:
    """Write the netted position (one row per account and symbol) and flush, so the next read in
    this transaction (the margin check of the next fill) sees it."""
    values: dict[str, Any] = {
        "side": side,
        "quantity": quantity,
        "entry_price": entry_price,
        "leverage": leverage,
        "updated_at": dt.datetime.now(dt.UTC),
    }
    stmt = insert(PaperPosition).values(account_id=account_id, symbol=symbol, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["account_id", "symbol"], set_=values))
    session.flush()


def paper_order(session: Session, account_id: int, client_order_id: str, *, lock: bool = False) -> PaperOrder | None:
    stmt = select(PaperOrder).where(PaperOrder.account_id == account_id, PaperOrder.client_order_id == client_order_id)
    return session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()


def resting_paper_orders(session: Session, account_id: int) -> Sequence[PaperOrder]:
    """The account's open (resting) orders, oldest first, locked: matching them against a price
    must not race a cancel."""
    stmt = (
        select(PaperOrder)
        .where(PaperOrder.account_id == account_id, PaperOrder.status == "open")
        .order_by(PaperOrder.id)
        .with_for_update()
    )
    return session.scalars(stmt).all()


def add_paper_order(session: Session, order: PaperOrder) -> PaperOrder:
    """Insert a new order row and flush, so it has its id (the venue's order id) at once."""
    session.add(order)
    session.flush()
    return order


# ---------------------------------------------------------------- the market-driven matcher


def paper_margin_mode(session: Session, account_id: int, symbol: str) -> str:
    """The symbol's margin mode; 'isolated' until ``set_margin_mode`` was called."""
    setting = session.get(PaperSymbolSetting, (account_id, symbol))
    return setting.margin_mode if setting is not None else "isolated"


@dataclass(frozen=True)
class PaperBook:
    """Every account's resting orders and open positions (with what a liquidation price needs),
    read without locks: the matcher's in-memory trigger levels, re-checked under locks on a hit."""

    orders: list[PaperOrder]
    positions: list[PaperPosition]
    margin_modes: dict[tuple[int, str], str]
    wallets: dict[int, Decimal]


def paper_book(session: Session) -> PaperBook:
    orders = list(session.scalars(select(PaperOrder).where(PaperOrder.status == "open")))
    positions = list(session.scalars(select(PaperPosition).where(PaperPosition.quantity > 0)))
    modes = {(r.account_id, r.symbol): r.margin_mode for r in session.scalars(select(PaperSymbolSetting))}
    wallets = {w.account_id: w.balance for w in session.scalars(select(PaperWallet))}
    return PaperBook(orders, positions, modes, wallets)


def accounts_holding(session: Session, symbol: str) -> list[int]:
    """Accounts with a non-flat paper position in ``symbol`` (who pays or receives its funding)."""
    stmt = select(PaperPosition.account_id).where(PaperPosition.symbol == symbol, PaperPosition.quantity > 0)
    return list(session.scalars(stmt.order_by(PaperPosition.account_id)))


def record_paper_funding(
    session: Session,
    account_id: int,
    symbol: str,
    funding_time: dt.datetime,
    *,
    side: str,
    quantity: Decimal,
    mark_price: Decimal,
    rate: Decimal,
    amount: Decimal,
) -> bool:
    """Insert the settlement row; False when (account, symbol, funding time) is already settled
    (``ON CONFLICT DO NOTHING``: a concurrent settler waits for the first one's commit, then skips)."""
    stmt = insert(PaperFundingPayment).values(
        account_id=account_id, symbol=symbol, funding_time=funding_time, side=side, quantity=quantity,
        mark_price=mark_price, rate=rate, amount=amount,
    )  # fmt: skip
    done = session.execute(stmt.on_conflict_do_nothing().returning(PaperFundingPayment.account_id))
    return done.first() is not None


def paper_funding_payments(session: Session, account_id: int) -> list[PaperFundingPayment]:
    stmt = select(PaperFundingPayment).where(PaperFundingPayment.account_id == account_id)
    return list(session.scalars(stmt.order_by(PaperFundingPayment.funding_time, PaperFundingPayment.symbol)))
