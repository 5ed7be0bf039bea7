"""Accounting: the venue's own records of what a trade cost and earned, and the arithmetic over them.

Where the numbers come from (never from our own estimate):

* **Trades** (:class:`VenueTrade`): Binance ``GET /fapi/v1/userTrades`` (``commission``,
  ``commissionAsset``, ``realizedPnl``), OKX ``GET /api/v5/trade/fills`` / ``fills-history``
  (``fee`` negative = charged, ``feeCcy``, ``fillPnl``); the paper exchange's own ledger (its orders),
  whose realised PnL is computed here by :func:`realize` with the paper exchange's rule (average
  entry price, one-way netting).
* **Funding** (:class:`FundingPayment`): Binance ``GET /fapi/v1/income`` ``incomeType=FUNDING_FEE``,
  OKX ``GET /api/v5/account/bills`` ``type=8``, the paper ledger's ``paper_funding_payments``.

Sign conventions, one for everything stored: a fee is what the account PAID (> 0 charged, < 0 a
rebate); realised PnL and funding are what the account RECEIVED (< 0 lost / paid).

Net realised PnL (what the limits use) = venue realised PnL - fees in the settlement currency +
funding. Fees in another currency (Binance's BNB discount) are stored as the venue reports them and
counted separately, never converted at a guessed price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

Side = Literal["buy", "sell"]
SETTLEMENT = "USDT"
_ZERO = Decimal(0)


@dataclass(frozen=True)
class VenueTrade:
    """One execution as the venue recorded it. ``realized_pnl`` is None when the venue does not
    publish it (the paper ledger): :func:`realize` computes it then."""

    trade_id: str  # Binance trade ``id`` / OKX ``tradeId`` / paper order id: unique per symbol
    exchange_order_id: str
    symbol: str  # ccxt unified, e.g. "BTC/USDT:USDT"
    side: Side
    price: Decimal
    quantity: Decimal  # base units, > 0
    fee: Decimal  # paid: > 0 charged, < 0 rebate
    fee_currency: str
    realized_pnl: Decimal | None  # gross of fees, in the settlement currency
    ts_ms: int


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement: ``amount`` > 0 received, < 0 paid (Binance's ``income`` sign)."""

    payment_id: str  # Binance ``tranId`` / OKX ``billId`` / paper "symbol@funding time"
    symbol: str
    amount: Decimal
    currency: str
    ts_ms: int


@runtime_checkable
class AccountLedger(Protocol):
    """Optional part of a venue: its own record of trades and funding, read by the accounting sync."""

    def fetch_account_trades(self, symbol: str, *, since_ms: int, until_ms: int) -> list[VenueTrade]:
        """Every execution on ``symbol`` with since_ms <= time <= until_ms (all pages)."""
        ...

    def fetch_funding_payments(self, *, since_ms: int, until_ms: int) -> list[FundingPayment]:
        """Every funding payment of the account with since_ms <= time <= until_ms (all pages)."""
        ...


def net_pnl(trade: VenueTrade) -> Decimal:
    """The trade's realised PnL net of its fee when the fee is in the settlement currency."""
    fee = trade.fee if trade.fee_currency == SETTLEMENT else _ZERO
    return (trade.realized_pnl or _ZERO) - fee


def realize(trades: Sequence[VenueTrade]) -> list[VenueTrade]:
    """Fill in ``realized_pnl`` where the venue gave none, by replaying the trades (in time order,
    all of one symbol) through a one-way position with an average entry price: a reducing trade
    realises ``closed x (price - entry)`` (sign by side), a trade through zero opens the remainder
    at its price. The paper exchange nets fills by exactly this rule (adapters/exchange/paper.py)."""
    qty, entry = _ZERO, _ZERO
    out = []
    for t in trades:
        signed = t.quantity if t.side == "buy" else -t.quantity
        pnl = _ZERO
        new = qty + signed
        if qty == 0 or (qty > 0) == (signed > 0):
            entry = (abs(qty) * entry + t.quantity * t.price) / abs(new)
        else:
            closed = min(abs(qty), t.quantity)
            pnl = closed * (t.price - entry) * (1 if qty > 0 else -1)
            if new != 0 and (new > 0) != (qty > 0):
                entry = t.price
        qty = new
        if qty == 0:
            entry = _ZERO
        out.append(t if t.realized_pnl is not None else replace(t, realized_pnl=pnl))
    return out


@dataclass(frozen=True)
class Episode:
    """One position's life on one symbol, from the trade that opened it (from flat) to the trade that
    closed it (back to flat, or through zero); ``end_ms`` None = still open."""

    symbol: str
    side: Literal["long", "short"]
    start_ms: int
    end_ms: int | None
    trade_ids: tuple[str, ...]
    realized_pnl: Decimal  # gross, from the trades
    fees: Decimal  # settlement-currency fees of its trades


@dataclass
class _Open:
    side: Literal["long", "short"]
    start_ms: int
    trade_ids: list[str]
    pnl: Decimal = _ZERO
    fees: Decimal = _ZERO

    def close(self, symbol: str, end_ms: int | None) -> Episode:
        return Episode(symbol, self.side, self.start_ms, end_ms, tuple(self.trade_ids), self.pnl, self.fees)


def episodes(trades: Sequence[VenueTrade]) -> list[Episode]:
    """Split one symbol's trades (time order) into positions. A trade that reverses the position
    belongs to both: its realised PnL and its fee go to the position it closed (the venue's
    ``realizedPnl`` is the closing part's), the new one starts at its time."""
    out: list[Episode] = []
    qty = _ZERO
    cur: _Open | None = None
    for t in trades:
        signed = t.quantity if t.side == "buy" else -t.quantity
        new = qty + signed
        if cur is None:
            cur = _Open("long" if signed > 0 else "short", t.ts_ms, [])
        cur.trade_ids.append(t.trade_id)
        cur.pnl += t.realized_pnl or _ZERO
        cur.fees += t.fee if t.fee_currency == SETTLEMENT else _ZERO
        if new == 0 or (qty != 0 and (new > 0) != (qty > 0)):
            out.append(cur.close(t.symbol, t.ts_ms))
            # through zero: the remainder is a new position, begun by this trade
            cur = None if new == 0 else _Open("long" if new > 0 else "short", t.ts_ms, [t.trade_id])
        qty = new
    if cur is not None:
        out.append(cur.close(trades[-1].symbol, None))
    return out


def episode_for(found: Sequence[Episode], side: str, opened_at_ms: int, *, skew_ms: int = 5_000) -> Episode | None:
    """The position (episode) a stored position row describes: same side, begun at most ``skew_ms``
    after the row was opened (the row is written after the fill that opened it, from the venue's
    answer), and not ended before the row was opened; the latest such one."""
    best = None
    for e in found:
        if e.side != side or e.start_ms > opened_at_ms + skew_ms:
            continue
        if e.end_ms is not None and e.end_ms < opened_at_ms - skew_ms:
            continue
        best = e
    return best


def funding_between(payments: Iterable[FundingPayment], symbol: str, start_ms: int, end_ms: int | None) -> Decimal:
    """Funding received (< 0 paid) on ``symbol`` while a position was open: start < ts <= end."""
    total = _ZERO
    for p in payments:
        inside = p.ts_ms > start_ms and (end_ms is None or p.ts_ms <= end_ms)
        if p.symbol == symbol and p.currency == SETTLEMENT and inside:
            total += p.amount
    return total


@dataclass(frozen=True)
class Drawdown:
    """Peak-to-trough of an equity series: the highest equity seen and how far below it the latest is."""

    peak: Decimal
    current: Decimal
    peak_at: dt.datetime | None

    @property
    def pct(self) -> Decimal:
        if self.peak <= 0:
            return _ZERO
        return max(_ZERO, (self.peak - self.current) / self.peak * 100)


def drawdown(series: Sequence[tuple[dt.datetime, Decimal]]) -> Drawdown | None:
    """The current drawdown of ``series`` ((time, equity) in time order) from its running peak; None
    for an empty series."""
    if not series:
        return None
    peak_at, peak = series[0]
    for at, equity in series:
        if equity > peak:
            peak_at, peak = at, equity
    return Drawdown(peak=peak, current=series[-1][1], peak_at=peak_at)


def utc_day_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
