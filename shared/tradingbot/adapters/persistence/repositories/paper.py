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
from typing import Any, cast

from sqlalchemy import Table, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value

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


# The account's positions and their symbols' settings, read once per transaction with the wallet
# lock (lock_paper_account) and kept in ``session.info`` under this key: the fill path then reads
# and writes them without another round trip (docs/adr/0007-paper-matching.md, "Measurement").
_LEDGER = "tradingbot.paper_ledger"


@dataclass
class _Ledger:
    positions: dict[str, PaperPosition]  # every position row of the account (flat ones too)
    settings: dict[str, PaperSymbolSetting | None]  # per symbol of ``positions``: its row or None (defaults)


def _ledger(session: Session, account_id: int) -> _Ledger | None:
    ledgers: dict[int, _Ledger] = session.info.get(_LEDGER, {})
    return ledgers.get(account_id)


def lock_paper_account(session: Session, account_id: int, initial_balance: Decimal) -> PaperWallet:
    """The wallet row locked FOR UPDATE (created with ``initial_balance`` on first use, as
    :func:`lock_paper_wallet`), and in the same statement every position row of the account with
    its symbol's settings, kept for this transaction: :func:`paper_position`, :func:`paper_positions`,
    :func:`paper_leverage` and :func:`paper_margin_mode` then answer without SQL, and
    :func:`upsert_paper_position` updates the loaded row (written by the commit's flush).

    Only the wallet row is locked (``FOR UPDATE OF paper_wallets``; PostgreSQL cannot lock the
    nullable side of an outer join): the positions are safe because every writer of a paper position
    (``PaperExchange`` fills, liquidations and funding) takes this wallet lock first."""
    stmt = (
        select(PaperWallet, PaperPosition, PaperSymbolSetting)
        .outerjoin(PaperPosition, PaperPosition.account_id == PaperWallet.account_id)
        .outerjoin(
            PaperSymbolSetting,
            (PaperSymbolSetting.account_id == PaperPosition.account_id)
            & (PaperSymbolSetting.symbol == PaperPosition.symbol),
        )
        .where(PaperWallet.account_id == account_id)
        .with_for_update(of=PaperWallet)
    )
    rows = session.execute(stmt, execution_options={"populate_existing": True}).all()
    if not rows:
        wallet = lock_paper_wallet(session, account_id, initial_balance)  # first use: no positions yet
        session.info.setdefault(_LEDGER, {})[account_id] = _Ledger({}, {})
        return wallet
    ledger = _Ledger({}, {})
    for _, pos, setting in rows:
        if pos is not None:
            ledger.positions[pos.symbol] = pos
            ledger.settings[pos.symbol] = setting
    session.info.setdefault(_LEDGER, {})[account_id] = ledger
    wallet_row: PaperWallet = rows[0][0]
    return wallet_row


def set_paper_symbol_setting(
    session: Session, account_id: int, symbol: str, *, leverage: int | None = None, margin_mode: str | None = None
) -> None:
    """Upsert the given settings of one symbol; the ones left None keep their values (or defaults)."""
    values: dict[str, Any] = {k: v for k, v in (("leverage", leverage), ("margin_mode", margin_mode)) if v is not None}
    if not values:
        return
    stmt = insert(PaperSymbolSetting).values(account_id=account_id, symbol=symbol, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["account_id", "symbol"], set_=values))
    ledger = _ledger(session, account_id)
    if ledger is not None:
        ledger.settings.pop(symbol, None)  # read again from the table


def paper_leverage(session: Session, account_id: int, symbol: str) -> int:
    """The symbol's leverage setting; 1 until ``set_leverage`` was called, as on a venue."""
    setting = _setting(session, account_id, symbol)
    return setting.leverage if setting is not None else 1


def _setting(session: Session, account_id: int, symbol: str) -> PaperSymbolSetting | None:
    ledger = _ledger(session, account_id)
    if ledger is not None and symbol in ledger.settings:
        return ledger.settings[symbol]
    return session.get(PaperSymbolSetting, (account_id, symbol))


def paper_positions(session: Session, account_id: int) -> list[PaperPosition]:
    """The account's non-flat positions (a flat one keeps its row with quantity 0)."""
    ledger = _ledger(session, account_id)
    if ledger is not None:
        return [p for p in ledger.positions.values() if p.quantity > 0]
    stmt = select(PaperPosition).where(PaperPosition.account_id == account_id, PaperPosition.quantity > 0)
    return list(session.scalars(stmt))


def paper_position(session: Session, account_id: int, symbol: str, *, lock: bool = False) -> PaperPosition | None:
    """The position row (None: never traded). After :func:`lock_paper_account` in this transaction it
    comes from what that read (no SQL; the wallet lock covers it); else ``lock`` takes a row lock."""
    ledger = _ledger(session, account_id)
    if ledger is not None:
        return ledger.positions.get(symbol)
    return session.get(PaperPosition, (account_id, symbol), with_for_update=lock or None)


def upsert_paper_position(
    session: Session, account_id: int, symbol: str, *, side: str, quantity: Decimal, entry_price: Decimal, leverage: int
) -> None:
    """Write the netted position (one row per account and symbol). A row loaded by
    :func:`lock_paper_account` is updated in place (one UPDATE at the commit's flush, beside the
    wallet's and the order's); a new one is inserted at once (``ON CONFLICT DO UPDATE``) and joins
    the transaction's loaded rows, so the next read in this transaction (the margin check of the
    next fill) sees it either way."""
    values: dict[str, Any] = {
        "side": side,
        "quantity": quantity,
        "entry_price": entry_price,
        "leverage": leverage,
        "updated_at": dt.datetime.now(dt.UTC),
    }
    ledger = _ledger(session, account_id)
    pos = ledger.positions.get(symbol) if ledger is not None else None
    if pos is not None:
        for key, value in values.items():
            setattr(pos, key, value)
        return
    stmt = insert(PaperPosition).values(account_id=account_id, symbol=symbol, **values)
    upsert = stmt.on_conflict_do_update(index_elements=["account_id", "symbol"], set_=values).returning(PaperPosition)
    row = session.scalars(upsert, execution_options={"populate_existing": True}).one()
    if ledger is not None:
        ledger.positions[symbol] = row
        ledger.settings.pop(symbol, None)  # not read with the lock: from the table when asked
    else:
        session.flush()


def write_back(session: Session) -> int:
    """Write this transaction's changed wallet, position and order rows in ONE statement (data-modifying
    CTEs, ``WITH w0 AS (UPDATE ...), w1 AS (UPDATE ...) SELECT 1``: PostgreSQL runs every one of them,
    https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING) instead of the
    flush's one UPDATE per row; the rows are then marked clean, so the commit sends nothing more.
    Only changed columns are written, by primary key, as the flush would. Returns the rows written
    (fewer than two: left to the flush)."""
    dirty = [
        obj
        for obj in session.dirty
        if isinstance(obj, PaperWallet | PaperPosition | PaperOrder) and session.is_modified(obj)
    ]
    if len(dirty) < 2:
        return 0
    ctes = []
    written: list[tuple[Any, list[str]]] = []
    for i, obj in enumerate(dirty):
        state = instance_state(obj)
        table = cast(Table, state.mapper.local_table)  # these models map one table each
        changed = [a.key for a in state.mapper.column_attrs if state.attrs[a.key].history.has_changes()]
        if not changed:
            continue
        pk = [(col, getattr(obj, state.mapper.get_property_by_column(col).key)) for col in state.mapper.primary_key]
        stmt = (
            update(table)
            .where(*[col == value for col, value in pk])
            .values({table.c[state.mapper.attrs[k].columns[0].name]: getattr(obj, k) for k in changed})
            .returning(literal(1))
        )
        ctes.append(stmt.cte(f"w{i}"))
        written.append((obj, changed))
    if not ctes:
        return 0
    with session.no_autoflush:  # the flush would send the very UPDATEs this statement replaces
        session.execute(select(literal(1)).add_cte(*ctes))
    for obj, changed in written:
        for key in changed:
            set_committed_value(obj, key, getattr(obj, key))
    return len(written)


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
    setting = _setting(session, account_id, symbol)
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
