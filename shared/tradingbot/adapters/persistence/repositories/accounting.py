"""Accounting: the venue's trades and funding payments stored once, the equity series, the sync
cursor, fees written onto our fills, realised PnL per position and per UTC day.

Every write is idempotent (``INSERT ... ON CONFLICT DO NOTHING`` on the venue's own ids), so a
sync that re-reads an overlap, or two syncs of one account at once, store each record once.
Sign conventions: :mod:`tradingbot.domain.accounting` (fee > 0 paid; PnL and funding > 0 received).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    AccountingCursor,
    AccountTrade,
    EquitySnapshot,
    Fill,
    FundingPaymentRow,
    Order,
    PaperFundingPayment,
    PaperOrder,
    Position,
)
from tradingbot.domain.accounting import SETTLEMENT, FundingPayment, VenueTrade, from_ms, ms

_ZERO = Decimal(0)


# ------------------------------------------------------------------ cursor


def lock_cursor(session: Session, account_id: int, *, start: dt.datetime) -> AccountingCursor:
    """The account's cursor, locked FOR UPDATE (created at ``start`` on first use): two syncs of one
    account run one after the other."""
    session.execute(
        insert(AccountingCursor)
        .values(account_id=account_id, synced_until=start)
        .on_conflict_do_nothing(index_elements=[AccountingCursor.account_id])
    )
    stmt = select(AccountingCursor).where(AccountingCursor.account_id == account_id).with_for_update()
    return session.scalars(stmt).one()


def cursor(session: Session, account_id: int) -> AccountingCursor | None:
    return session.get(AccountingCursor, account_id)


# ------------------------------------------------------------------ trades and funding


def record_trades(session: Session, account_id: int, trades: Iterable[VenueTrade]) -> int:
    """Store each trade once per (account, symbol, venue trade id); returns how many were new.
    ``realized_pnl`` must be known (the caller runs :func:`~tradingbot.domain.accounting.realize`)."""
    rows = [
        {
            "account_id": account_id, "venue_trade_id": t.trade_id, "exchange_order_id": t.exchange_order_id,
            "symbol": t.symbol, "side": t.side, "price": t.price, "quantity": t.quantity, "fee": t.fee,
            "fee_currency": t.fee_currency, "realized_pnl": t.realized_pnl if t.realized_pnl is not None else _ZERO,
            "traded_at": from_ms(t.ts_ms),
        }
        for t in trades
        if t.quantity > 0
    ]  # fmt: skip
    if not rows:
        return 0
    stmt = (
        insert(AccountTrade)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[AccountTrade.account_id, AccountTrade.symbol, AccountTrade.venue_trade_id]
        )
        .returning(AccountTrade.id)
    )
    return len(session.scalars(stmt).all())


def stored_trades(session: Session, account_id: int, symbol: str) -> list[VenueTrade]:
    """The account's stored trades on ``symbol`` in time order."""
    stmt = (
        select(AccountTrade)
        .where(AccountTrade.account_id == account_id, AccountTrade.symbol == symbol)
        .order_by(AccountTrade.traded_at, AccountTrade.id)
    )
    return [
        VenueTrade(
            trade_id=r.venue_trade_id, exchange_order_id=r.exchange_order_id, symbol=r.symbol, side=r.side,  # type: ignore[arg-type]
            price=r.price, quantity=r.quantity, fee=r.fee, fee_currency=r.fee_currency, realized_pnl=r.realized_pnl,
            ts_ms=ms(r.traded_at),
        )
        for r in session.scalars(stmt)
    ]  # fmt: skip


def record_funding(session: Session, account_id: int, payments: Iterable[FundingPayment]) -> int:
    """Store each funding payment once per (account, venue id); returns how many were new."""
    rows = [
        {"account_id": account_id, "payment_id": p.payment_id, "symbol": p.symbol, "amount": p.amount,
         "currency": p.currency, "paid_at": from_ms(p.ts_ms)}
        for p in payments
    ]  # fmt: skip
    if not rows:
        return 0
    stmt = (
        insert(FundingPaymentRow)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[FundingPaymentRow.account_id, FundingPaymentRow.payment_id])
        .returning(FundingPaymentRow.id)
    )
    return len(session.scalars(stmt).all())


def stored_funding(session: Session, account_id: int, symbol: str) -> list[FundingPayment]:
    stmt = (
        select(FundingPaymentRow)
        .where(FundingPaymentRow.account_id == account_id, FundingPaymentRow.symbol == symbol)
        .order_by(FundingPaymentRow.paid_at, FundingPaymentRow.id)
    )
    return [FundingPayment(r.payment_id, r.symbol, r.amount, r.currency, ms(r.paid_at)) for r in session.scalars(stmt)]


def traded_symbols(session: Session, account_id: int, *, since: dt.datetime) -> list[str]:
    """Symbols whose trades the sync reads: those of the account's orders since ``since``, of its
    live orders (a resting stop can fill long after it was placed), of its stored positions (open,
    or closed since ``since``), of the trades already stored since ``since`` and (paper accounts) of
    the paper exchange's own orders."""
    orders = select(Order.symbol).where(
        Order.account_id == account_id,
        (Order.created_at >= since) | Order.status.in_(("pending", "submitted", "open", "partially_filled")),
    )
    positions = select(Position.symbol).where(
        Position.account_id == account_id, Position.closed_at.is_(None) | (Position.closed_at >= since)
    )
    trades = select(AccountTrade.symbol).where(AccountTrade.account_id == account_id, AccountTrade.traded_at >= since)
    paper = select(PaperOrder.symbol).where(PaperOrder.account_id == account_id, PaperOrder.updated_at >= since)
    stmt = orders.union(positions, trades, paper)
    return sorted({str(s) for s in session.scalars(stmt)})


# ------------------------------------------------------------------ fees onto our fills


def apply_fees_to_fills(session: Session, account_id: int) -> int:
    """Write the venue's fees onto our fills: for every order whose stored trades cover exactly the
    quantity our fills say it filled, its fills get the trades' total fee, split by quantity (the
    last fill takes the remainder, so the sum is exact). An order whose trades do not cover it yet
    keeps what it has (NULL = not known). Returns how many fills changed."""
    trades = select(
        AccountTrade.exchange_order_id, func.sum(AccountTrade.quantity), func.sum(AccountTrade.fee),
        func.min(AccountTrade.fee_currency), func.count(func.distinct(AccountTrade.fee_currency)),
    ).where(AccountTrade.account_id == account_id).group_by(AccountTrade.exchange_order_id)  # fmt: skip
    by_order = {str(oid): (Decimal(q), Decimal(f), str(c), int(n)) for oid, q, f, c, n in session.execute(trades)}
    if not by_order:
        return 0
    rows = session.execute(
        select(Order.exchange_order_id, Fill)
        .join(Fill, Fill.order_id == Order.id)
        .where(Order.account_id == account_id, Order.exchange_order_id.in_(list(by_order)))
        .order_by(Fill.order_id, Fill.id)
    ).all()
    fills: dict[str, list[Fill]] = defaultdict(list)
    for oid, fill in rows:
        fills[str(oid)].append(fill)
    changed = 0
    for oid, group in fills.items():
        qty, fee, currency, currencies = by_order[oid]
        if currencies != 1 or sum((f.quantity for f in group), _ZERO) != qty:
            continue
        left = fee
        for i, f in enumerate(group):
            share = left if i == len(group) - 1 else fee * f.quantity / qty
            left -= share
            if f.fee != share or f.fee_currency != currency:
                f.fee, f.fee_currency = share, currency
                changed += 1
    session.flush()
    return changed


def fills_with_unknown_fee(session: Session, account_id: int) -> int:
    stmt = (
        select(func.count(Fill.id))
        .join(Order, Fill.order_id == Order.id)
        .where(Order.account_id == account_id, Fill.fee.is_(None))
    )
    return int(session.scalar(stmt) or 0)


# ------------------------------------------------------------------ positions


def positions_to_price(session: Session, account_id: int, *, since: dt.datetime) -> Sequence[Position]:
    """Stored positions whose realised PnL the sync (re)writes: open, or closed since ``since``."""
    stmt = (
        select(Position)
        .where(Position.account_id == account_id, Position.closed_at.is_(None) | (Position.closed_at >= since))
        .order_by(Position.opened_at, Position.id)
        .with_for_update()
    )
    return session.scalars(stmt).all()


# ------------------------------------------------------------------ equity


def record_equity(
    session: Session, account_id: int, *, at: dt.datetime, equity: Decimal, free: Decimal, currency: str = SETTLEMENT
) -> None:
    session.add(EquitySnapshot(account_id=account_id, at=at, equity=equity, free=free, currency=currency))
    session.flush()


def equity_series(
    session: Session, account_id: int, *, since: dt.datetime | None = None
) -> list[tuple[dt.datetime, Decimal]]:
    """(time, equity) in time order, optionally from ``since``."""
    stmt = select(EquitySnapshot.at, EquitySnapshot.equity).where(EquitySnapshot.account_id == account_id)
    if since is not None:
        stmt = stmt.where(EquitySnapshot.at >= since)
    return [(at, Decimal(e)) for at, e in session.execute(stmt.order_by(EquitySnapshot.at, EquitySnapshot.id))]


def equity_peak_and_last(session: Session, account_id: int) -> tuple[Decimal, Decimal, dt.datetime] | None:
    """(peak equity, latest equity, latest time) over the whole series, in two index reads; None if empty."""
    last = session.execute(
        select(EquitySnapshot.equity, EquitySnapshot.at)
        .where(EquitySnapshot.account_id == account_id)
        .order_by(EquitySnapshot.at.desc(), EquitySnapshot.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    peak = session.scalar(select(func.max(EquitySnapshot.equity)).where(EquitySnapshot.account_id == account_id))
    return Decimal(peak or 0), Decimal(last[0]), last[1]


# ------------------------------------------------------------------ PnL per day


@dataclass
class DailyPnl:
    """One UTC day of one account: realised PnL (venue, gross), settlement-currency fees, funding,
    fees in other currencies (never converted), trade count; ``net`` = realised - fees + funding."""

    day: dt.date
    realized: Decimal = _ZERO
    fees: Decimal = _ZERO
    funding: Decimal = _ZERO
    trades: int = 0
    other_fees: dict[str, Decimal] = field(default_factory=dict)

    @property
    def net(self) -> Decimal:
        return self.realized - self.fees + self.funding


def daily_pnl(session: Session, account_id: int, *, since: dt.datetime) -> list[DailyPnl]:
    """Per UTC day from ``since``: the account's trades and funding, grouped in SQL."""
    utc: Any = literal_column("'UTC'")  # inlined: a bound parameter would make GROUP BY differ from SELECT
    day = func.date(func.timezone(utc, AccountTrade.traded_at))
    trades = (
        select(day, AccountTrade.fee_currency, func.sum(AccountTrade.realized_pnl), func.sum(AccountTrade.fee),
               func.count(AccountTrade.id))
        .where(AccountTrade.account_id == account_id, AccountTrade.traded_at >= since)
        .group_by(day, AccountTrade.fee_currency)
    )  # fmt: skip
    fday = func.date(func.timezone(utc, FundingPaymentRow.paid_at))
    funding = (
        select(fday, func.sum(FundingPaymentRow.amount))
        .where(
            FundingPaymentRow.account_id == account_id,
            FundingPaymentRow.paid_at >= since,
            FundingPaymentRow.currency == SETTLEMENT,
        )
        .group_by(fday)
    )
    out: dict[dt.date, DailyPnl] = {}
    for d, currency, pnl, fee, n in session.execute(trades):
        row = out.setdefault(d, DailyPnl(d))
        row.realized += Decimal(pnl)
        row.trades += int(n)
        if currency == SETTLEMENT:
            row.fees += Decimal(fee)
        else:
            row.other_fees[str(currency)] = row.other_fees.get(str(currency), _ZERO) + Decimal(fee)
    for d, amount in session.execute(funding):
        out.setdefault(d, DailyPnl(d)).funding += Decimal(amount)
    return [out[d] for d in sorted(out)]


def net_pnl_since(session: Session, account_id: int, since: dt.datetime) -> Decimal:
    """Realised PnL - settlement-currency fees + funding since ``since``: the daily-loss rule's input."""
    trades = session.scalar(
        select(func.coalesce(func.sum(AccountTrade.realized_pnl), 0)).where(
            AccountTrade.account_id == account_id, AccountTrade.traded_at >= since
        )
    )
    fees = session.scalar(
        select(func.coalesce(func.sum(AccountTrade.fee), 0)).where(
            AccountTrade.account_id == account_id, AccountTrade.traded_at >= since,
            AccountTrade.fee_currency == SETTLEMENT,
        )
    )  # fmt: skip
    funding = session.scalar(
        select(func.coalesce(func.sum(FundingPaymentRow.amount), 0)).where(
            FundingPaymentRow.account_id == account_id, FundingPaymentRow.paid_at >= since,
            FundingPaymentRow.currency == SETTLEMENT,
        )
    )  # fmt: skip
    return Decimal(trades or 0) - Decimal(fees or 0) + Decimal(funding or 0)


# ------------------------------------------------------------------ the paper exchange's ledger


def paper_trades(
    session: Session, account_id: int, symbol: str, *, since: dt.datetime, until: dt.datetime
) -> list[VenueTrade]:
    """The paper exchange's executions on ``symbol`` (its filled orders, liquidations included), in
    time order, as trades without a realised PnL (the paper venue publishes none: the sync replays)."""
    stmt = (
        select(PaperOrder)
        .where(
            PaperOrder.account_id == account_id, PaperOrder.symbol == symbol, PaperOrder.filled > 0,
            PaperOrder.updated_at >= since, PaperOrder.updated_at <= until,
        )
        .order_by(PaperOrder.updated_at, PaperOrder.id)
    )  # fmt: skip
    return [
        VenueTrade(
            trade_id=str(o.id), exchange_order_id=f"paper-{o.id}", symbol=o.symbol, side=o.side,  # type: ignore[arg-type]
            price=Decimal(o.average_price or 0), quantity=Decimal(o.filled), fee=Decimal(o.fee or 0),
            fee_currency=SETTLEMENT, realized_pnl=None, ts_ms=ms(o.updated_at),
        )
        for o in session.scalars(stmt)
    ]  # fmt: skip


def paper_funding(session: Session, account_id: int, *, since: dt.datetime, until: dt.datetime) -> list[FundingPayment]:
    """The paper exchange's funding settlements (its ``amount`` > 0 = paid, turned into received)."""
    stmt = (
        select(PaperFundingPayment)
        .where(
            PaperFundingPayment.account_id == account_id,
            PaperFundingPayment.funding_time >= since,
            PaperFundingPayment.funding_time <= until,
        )
        .order_by(PaperFundingPayment.funding_time)
    )
    return [
        FundingPayment(f"{p.symbol}@{ms(p.funding_time)}", p.symbol, -Decimal(p.amount), SETTLEMENT, ms(p.funding_time))
        for p in session.scalars(stmt)
    ]
