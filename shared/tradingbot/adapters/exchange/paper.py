"""The paper exchange: the :class:`~tradingbot.domain.exchange.Exchange` interface over PostgreSQL.

* Market and marketable limit orders fill at the latest price in Redis (``tradingbot.adapters.cache``,
  written by the market feed) moved against the taker by ``slippage_bps``, minus a taker fee.
  No fresh price (feed down, TTL expired) means a clear rejection, never a fill at a stale price.
* Resting limit, stop-market and take-profit-market orders are matched against the cached price
  whenever the account's state is read or written (``_match``), so a stop placed by the order
  service really closes a paper position.
* One-way positions with margin ``notional / leverage``; an order needing more than the free
  margin (wallet minus the margin of open positions) is refused as :class:`InsufficientMargin`.
  :meth:`PaperExchange.apply_funding` charges or credits funding (the scheduler calls it every 8 h).
* Everything lives in the ``paper_*`` tables and each call is one transaction that locks the
  account's wallet row, so concurrent Lambdas serialise per account and a restart loses nothing.
* Client order ids are unique per account, exactly as on a venue: a second create with the same
  id raises :class:`DuplicateOrder`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxt.base.decimal_to_precision import NO_PADDING, ROUND, TICK_SIZE, TRUNCATE, decimal_to_precision

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.models import PaperOrder, PaperWallet
from tradingbot.domain.exchange import (
    Balance,
    BelowMinimum,
    DuplicateOrder,
    InsufficientMargin,
    LeverageTooHigh,
    MarginMode,
    MarketInfo,
    OrderRejected,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Position,
    Side,
    UnknownSymbol,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class PaperMarket:
    info: MarketInfo
    step: str  # amount tick, as ccxt's TICK_SIZE precision
    tick: str  # price tick


def _m(base: str, step: str, tick: str, min_qty: str, min_notional: int, max_lev: int) -> PaperMarket:
    symbol = f"{base}/USDT:USDT"
    info = MarketInfo(symbol, f"{base}USDT", Decimal(min_qty), Decimal(min_notional), max_lev)
    return PaperMarket(info, step, tick)


# Binance USDT-M's filters for the symbols the bot trades (Nov 2026), so a paper account rejects
# exactly what the live venue would.
PAPER_MARKETS: dict[str, PaperMarket] = {
    m.info.symbol: m
    for m in (
        _m("BTC", "0.001", "0.1", "0.001", 100, 125),
        _m("ETH", "0.001", "0.01", "0.001", 20, 100),
        _m("SOL", "1", "0.01", "1", 5, 75),
        _m("BNB", "0.01", "0.01", "0.01", 5, 75),
        _m("XRP", "0.1", "0.0001", "0.1", 5, 75),
        _m("DOGE", "1", "0.00001", "1", 5, 75),
    )
}
_BY_TICKER = {m.info.exchange_id: s for s, m in PAPER_MARKETS.items()}


class PaperExchange:
    def __init__(
        self,
        session_factory: SessionFactory,
        cache: Cache,
        account_id: int,
        *,
        price_source: str = "binanceusdm",
        fee_rate: Decimal = Decimal("0.0005"),
        slippage_bps: Decimal = Decimal(5),
        initial_balance: Decimal = Decimal(10_000),
    ) -> None:
        self.name = "paper"
        self._sessions = session_factory
        self._cache = cache
        self._account_id = account_id
        self._price_source = price_source
        self._fee_rate = fee_rate
        self._slippage = slippage_bps / Decimal(10_000)
        self._initial_balance = initial_balance

    def __repr__(self) -> str:
        return f"PaperExchange(account={self._account_id})"

    # ---------------------------------------------------------- markets

    def load_markets(self) -> None:
        return None

    def _paper_market(self, symbol: str) -> PaperMarket:
        unified = symbol if symbol in PAPER_MARKETS else _BY_TICKER.get(symbol.upper())
        if unified is None:
            raise UnknownSymbol(symbol, "paper")
        return PAPER_MARKETS[unified]

    def market(self, symbol: str) -> MarketInfo:
        return self._paper_market(symbol).info

    def max_leverage(self, symbol: str) -> int:
        return self.market(symbol).max_leverage or 1

    def amount_to_precision(self, symbol: str, quantity: Decimal) -> Decimal:
        pm = self._paper_market(symbol)
        rounded = Decimal(decimal_to_precision(str(quantity), TRUNCATE, pm.step, TICK_SIZE, NO_PADDING))
        if rounded <= 0:
            raise BelowMinimum(pm.info.symbol, "quantity", quantity, pm.info.min_quantity or Decimal(pm.step))
        return rounded

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        pm = self._paper_market(symbol)
        return Decimal(decimal_to_precision(str(price), ROUND, pm.tick, TICK_SIZE, NO_PADDING))

    def _price(self, symbol: str) -> Decimal | None:
        quote = self._cache.get_price(self._price_source, symbol)
        return quote.price if quote is not None else None

    # ---------------------------------------------------------- account settings

    def set_leverage(self, symbol: str, leverage: int) -> None:
        info = self.market(symbol)
        if leverage > (info.max_leverage or 1) or leverage < 1:
            raise LeverageTooHigh(info.symbol, leverage, info.max_leverage or 1, "the exchange's")
        with self._sessions() as s:
            repo.set_paper_symbol_setting(s, self._account_id, info.symbol, leverage=leverage)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        with self._sessions() as s:
            repo.set_paper_symbol_setting(s, self._account_id, self.market(symbol).symbol, margin_mode=mode)

    # ---------------------------------------------------------- wallet and positions

    def _wallet(self, s: Session) -> PaperWallet:
        """The wallet row, locked for this transaction (created on first use)."""
        return repo.lock_paper_wallet(s, self._account_id, self._initial_balance)

    def _used_margin(self, s: Session) -> Decimal:
        positions = repo.paper_positions(s, self._account_id)
        return sum((p.quantity * p.entry_price / p.leverage for p in positions), Decimal(0))

    def _apply_fill(
        self, s: Session, wallet: PaperWallet, symbol: str, side: Side, qty: Decimal, price: Decimal
    ) -> None:
        """Net the fill into the one-way position; realised PnL and the fee go to the wallet."""
        pos = repo.paper_position(s, self._account_id, symbol, lock=True)
        signed_cur = Decimal(0) if pos is None else (pos.quantity if pos.side == "long" else -pos.quantity)
        signed = qty if side == "buy" else -qty
        new = signed_cur + signed
        entry = pos.entry_price if pos is not None else price
        if signed_cur == 0 or (signed_cur > 0) == (signed > 0):
            entry = (abs(signed_cur) * entry + qty * price) / abs(new)
        else:
            closed = min(abs(signed_cur), qty)
            wallet.balance += closed * (price - entry) * (1 if signed_cur > 0 else -1)
            if new != 0 and (new > 0) != (signed_cur > 0):
                entry = price  # flipped through zero: the remainder opened at this price
        wallet.balance -= qty * price * self._fee_rate
        repo.upsert_paper_position(
            s, self._account_id, symbol, side="long" if new >= 0 else "short", quantity=abs(new),
            entry_price=entry if new != 0 else Decimal(0), leverage=repo.paper_leverage(s, self._account_id, symbol),
        )  # fmt: skip

    # ---------------------------------------------------------- orders

    def create_order(self, request: OrderRequest) -> OrderResult:
        info = self.market(request.symbol)
        with self._sessions() as s:
            wallet = self._wallet(s)
            self._match(s, wallet)
            if repo.paper_order(s, self._account_id, request.client_order_id) is not None:
                raise DuplicateOrder(f"paper: client order id {request.client_order_id!r} is already in use")
            order = PaperOrder(
                account_id=self._account_id, client_order_id=request.client_order_id, symbol=info.symbol,
                side=request.side, type=request.type, quantity=request.quantity, price=request.price,
                trigger_price=request.trigger_price, reduce_only=request.reduce_only, status="open",
            )  # fmt: skip
            if request.type in ("market", "limit"):
                self._execute_now(s, wallet, order)
            elif request.trigger_price is None:
                raise OrderRejected(f"trigger_price: a {request.type} order needs a trigger price")
            return _result(repo.add_paper_order(s, order))

    def _execute_now(self, s: Session, wallet: PaperWallet, order: PaperOrder) -> None:
        price = self._price(order.symbol)
        if price is None:
            err = OrderRejected(f"price: no fresh {order.symbol} price in the cache (is the market feed running?)")
            err.reason = "no_price"
            raise err
        # stops reach here only once triggered (by _match), and then execute as market orders
        marketable = order.type != "limit" or (
            order.price is not None and ((order.side == "buy") == (order.price >= price))
        )
        if not marketable:
            return  # rests on the book until _match sees the price cross
        qty = self._reducible(s, order) if order.reduce_only else order.quantity
        if qty <= 0:
            raise OrderRejected(f"reduce_only: no {order.symbol} position to reduce (the venue would answer -2022)")
        slip = price * self._slippage
        fill_price = price + slip if order.side == "buy" else price - slip
        if order.type == "limit" and order.price is not None:
            fill_price = min(fill_price, order.price) if order.side == "buy" else max(fill_price, order.price)
        if not order.reduce_only:
            self._check_margin(s, wallet, order.symbol, qty, fill_price)
        self._apply_fill(s, wallet, order.symbol, order.side, qty, fill_price)  # type: ignore[arg-type]
        order.filled, order.average_price = qty, fill_price
        order.fee = qty * fill_price * self._fee_rate
        order.status = "filled" if qty == order.quantity else "canceled"  # reduce-only remainder expires
        order.updated_at = dt.datetime.now(dt.UTC)

    def _reducible(self, s: Session, order: PaperOrder) -> Decimal:
        pos = repo.paper_position(s, self._account_id, order.symbol)
        if pos is None or pos.quantity == 0 or (pos.side == "long") == (order.side == "buy"):
            return Decimal(0)
        return min(order.quantity, pos.quantity)

    def _check_margin(self, s: Session, wallet: PaperWallet, symbol: str, qty: Decimal, price: Decimal) -> None:
        leverage = repo.paper_leverage(s, self._account_id, symbol)
        required = qty * price / leverage + qty * price * self._fee_rate
        free = wallet.balance - self._used_margin(s)
        if required > free:
            raise InsufficientMargin(
                f"margin: {symbol} needs {required:.2f} USDT at {leverage}x; {free:.2f} USDT is free"
            )

    def _match(self, s: Session, wallet: PaperWallet) -> None:
        """Fill resting orders whose condition the cached price now meets (stops close positions)."""
        for order in repo.resting_paper_orders(s, self._account_id):
            price = self._price(order.symbol)
            if price is None or not _triggered(order, price):
                continue
            try:
                self._execute_now(s, wallet, order)
            except (OrderRejected, InsufficientMargin):
                # a stop whose position is already gone expires, as on the venue
                order.status = "canceled" if order.reduce_only else "rejected"
                order.updated_at = dt.datetime.now(dt.UTC)

    def cancel_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        with self._sessions() as s:
            order = repo.paper_order(s, self._account_id, client_order_id, lock=True)
            if order is None or order.status != "open":
                raise OrderRejected(f"cancel: no open paper order {client_order_id!r}")
            order.status = "canceled"
            order.updated_at = dt.datetime.now(dt.UTC)

    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool = False
    ) -> OrderResult | None:
        with self._sessions() as s:
            self._match(s, self._wallet(s))
            order = repo.paper_order(s, self._account_id, client_order_id)
            return _result(order) if order is not None else None

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        wanted = {self.market(x).symbol for x in symbols} if symbols else None
        with self._sessions() as s:
            self._match(s, self._wallet(s))
            out = []
            for p in repo.paper_positions(s, self._account_id):
                if wanted is not None and p.symbol not in wanted:
                    continue
                mark = self._price(p.symbol) or p.entry_price
                upl = p.quantity * (mark - p.entry_price) * (1 if p.side == "long" else -1)
                out.append(Position(p.symbol, "long" if p.side == "long" else "short", p.quantity, p.entry_price,
                                    p.leverage, upl))  # fmt: skip
            return out

    def fetch_balance(self) -> Balance:
        with self._sessions() as s:
            wallet = self._wallet(s)
            self._match(s, wallet)
            used = self._used_margin(s)
            upl = Decimal(0)
            for p in repo.paper_positions(s, self._account_id):
                mark = self._price(p.symbol) or p.entry_price
                upl += p.quantity * (mark - p.entry_price) * (1 if p.side == "long" else -1)
            return Balance("USDT", total=wallet.balance + upl, free=wallet.balance - used + min(upl, Decimal(0)),
                           used=used, extra={"wallet": str(wallet.balance)})  # fmt: skip

    def apply_funding(self, symbol: str, rate: Decimal) -> Decimal:
        """Settle one funding interval at ``rate`` on the cached mark price: longs pay a positive
        rate, shorts receive it. Returns what the account paid (negative: received)."""
        info = self.market(symbol)
        with self._sessions() as s:
            wallet = self._wallet(s)
            pos = repo.paper_position(s, self._account_id, info.symbol, lock=True)
            mark = self._price(info.symbol)
            if pos is None or pos.quantity == 0 or mark is None:
                return Decimal(0)
            paid = pos.quantity * mark * rate * (1 if pos.side == "long" else -1)
            wallet.balance -= paid
            pos.funding_paid += paid
            return paid


def _triggered(order: PaperOrder, price: Decimal) -> bool:
    if order.type == "limit" and order.price is not None:
        return price <= order.price if order.side == "buy" else price >= order.price
    if order.trigger_price is None:
        return False
    # a stop protects against the adverse move, a take-profit fires on the favourable one
    adverse_for_seller = order.type == "stop_market"
    if order.side == "sell":
        return price <= order.trigger_price if adverse_for_seller else price >= order.trigger_price
    return price >= order.trigger_price if adverse_for_seller else price <= order.trigger_price


def _result(order: PaperOrder) -> OrderResult:
    status: OrderStatus = order.status  # type: ignore[assignment]
    otype: OrderType = order.type  # type: ignore[assignment]
    side: Side = order.side  # type: ignore[assignment]
    return OrderResult(
        client_order_id=order.client_order_id,
        exchange_order_id=f"paper-{order.id}" if order.id is not None else None,
        symbol=order.symbol, side=side, type=otype, status=status, quantity=order.quantity,
        filled=order.filled or Decimal(0), average_price=order.average_price, fee=order.fee or Decimal(0),
        reduce_only=order.reduce_only,
    )  # fmt: skip
