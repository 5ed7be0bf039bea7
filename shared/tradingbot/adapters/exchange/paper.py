"""The paper exchange: the :class:`~tradingbot.domain.exchange.Exchange` interface over PostgreSQL.

* Market and marketable limit orders fill at the latest price in Redis (``tradingbot.adapters.cache``,
  written by the market feed) moved against the taker by ``slippage_bps``, minus a taker fee.
  No fresh price (feed down, TTL expired) means a clear rejection, never a fill at a stale price.
* Resting limit, stop-market and take-profit-market orders are matched on every price update of the
  market feed by :class:`tradingbot.adapters.exchange.paper_matcher.PaperMatcher` (which calls
  :meth:`PaperExchange.on_market`), and also whenever the account's state is read or written
  (``_match``), so a stop placed by the order service closes a paper position when the market
  crosses it, whether or not anyone looks (docs/adr/0007-paper-matching.md).
* Every fill is at the market's tick size (``price_to_precision``), as on the venue.
* Liquidation at the maintenance margin of Binance's notional bracket (``tradingbot.domain.margin``),
  on the mark price: the position closes at its liquidation price (rounded to the tick) and the
  remaining maintenance margin goes to the insurance fund, as in the backtester (docs/adr/0002).
* One-way positions with margin ``notional / leverage``; an order needing more than the free
  margin (wallet minus the margin of open positions) is refused as :class:`InsufficientMargin`.
  :meth:`PaperExchange.settle_funding` charges or credits funding once per position and funding time
  (a ``paper_funding_payments`` row per account, symbol and funding time); the matcher calls it at
  each funding time the venue publishes.
* Everything lives in the ``paper_*`` tables and each call is one transaction that locks the
  account's wallet row, so concurrent Lambdas serialise per account and a restart loses nothing.
* Client order ids are unique per account, exactly as on a venue: a second create with the same
  id raises :class:`DuplicateOrder`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from ccxt.base.decimal_to_precision import NO_PADDING, ROUND, TICK_SIZE, TRUNCATE, decimal_to_precision
from redis.exceptions import RedisError

from tradingbot.adapters.cache import Cache, CacheUnavailable
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.models import PaperOrder, PaperPosition, PaperWallet
from tradingbot.adapters.persistence.repositories import accounting as accounting_repo
from tradingbot.adapters.persistence.repositories import paper as paper_repo
from tradingbot.domain.accounting import FundingPayment, VenueTrade, from_ms
from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE
from tradingbot.domain.exchange import (
    Balance,
    BelowMinimum,
    DuplicateOrder,
    ExchangeFailedNotPlaced,
    InsufficientMargin,
    LeverageTooHigh,
    MarginMode,
    MarketInfo,
    OrderGone,
    OrderRejected,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Position,
    Side,
    UnknownSymbol,
)
from tradingbot.domain.margin import ALT_75X, BTC_125X, ETH_100X, Bracket, liquidation_price, maintenance_margin

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# PUBLISHed (the account id) after a transaction that changed an account's resting orders or
# positions, so a running matcher reloads its trigger levels at once instead of at its next refresh
PAPER_BOOK_CHANNEL = "tb:paper:book"
FUNDING_QUANTUM = Decimal("0.00000001")  # Binance's funding fee income is shown to 8 decimals


@dataclass(frozen=True)
class PaperMarket:
    info: MarketInfo
    step: str  # amount tick, as ccxt's TICK_SIZE precision
    tick: str  # price tick
    brackets: tuple[Bracket, ...]  # maintenance margin tiers (domain.margin)


def _m(base: str, step: str, tick: str, min_qty: str, min_notional: int, max_lev: int) -> PaperMarket:
    symbol = f"{base}/USDT:USDT"
    info = MarketInfo(symbol, f"{base}USDT", Decimal(min_qty), Decimal(min_notional), max_lev)
    table = {125: BTC_125X, 100: ETH_100X}.get(max_lev, ALT_75X)
    return PaperMarket(info, step, tick, table)


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
        fee_rate: Decimal = TAKER_FEE_RATE,  # the one default (domain.costs), as the backtester's
        slippage_bps: Decimal = SLIPPAGE_BPS,
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

    def _price(self, symbol: str, *, to_fill: bool = False) -> Decimal | None:
        """The cached price (None: none fresh). ``to_fill``: an order arriving now fills at it, and an
        unreachable Redis is the venue failing the request, not "no price": ``ExchangeFailedNotPlaced``
        (the transaction rolls back, nothing is booked), which the order path sends again under the
        same client id, as after Binance's documented 503 "Service Unavailable."."""
        try:
            quote = self._cache.get_price(self._price_source, symbol, strict=to_fill)
        except CacheUnavailable as exc:
            raise ExchangeFailedNotPlaced(f"paper: its price source is unreachable ({exc}); nothing booked") from None
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
        """The wallet row, locked for this transaction (created on first use); the account's positions
        and their settings are read in the same statement and kept for the transaction."""
        return paper_repo.lock_paper_account(s, self._account_id, self._initial_balance)

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
            result = _result(repo.add_paper_order(s, order))
        self._book_changed()  # after the commit: a matcher that reloads now sees the new order
        return result

    def _book_changed(self) -> None:
        """Tell running matchers to reload (best effort: they also reload every few seconds)."""
        try:
            self._cache.client.publish(PAPER_BOOK_CHANNEL, str(self._account_id))
        except (RedisError, OSError) as exc:
            log.warning("paper book change not published (%s); matchers reload on their timer", type(exc).__name__)

    def _execute_now(self, s: Session, wallet: PaperWallet, order: PaperOrder, price: Decimal | None = None) -> None:
        price = price if price is not None else self._price(order.symbol, to_fill=True)
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
        fill_price = self.price_to_precision(order.symbol, fill_price)  # the venue fills at its tick size
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

    def _match(self, s: Session, wallet: PaperWallet, prices: Mapping[str, Decimal] | None = None) -> list[str]:
        """Fill resting orders whose condition the price now meets (stops close positions): the
        price in ``prices`` (a feed tick) where given, else the cached one. Returns the filled ids."""
        filled: list[str] = []
        for order in repo.resting_paper_orders(s, self._account_id):
            price = prices[order.symbol] if prices is not None and order.symbol in prices else self._price(order.symbol)
            if price is None or not _triggered(order, price):
                continue
            try:
                self._execute_now(s, wallet, order, price)
                filled.append(order.client_order_id)
            except (OrderRejected, InsufficientMargin):
                # a stop whose position is already gone expires, as on the venue
                order.status = "canceled" if order.reduce_only else "rejected"
                order.updated_at = dt.datetime.now(dt.UTC)
        return filled

    # ---------------------------------------------------------- liquidation

    def _mark(self, symbol: str, marks: Mapping[str, Decimal] | None = None) -> Decimal | None:
        """The mark price (liquidations use it, as the venues do): the tick's, else the feed's cached
        mark, else the last price when the feed carries no mark for the symbol."""
        if marks is not None and symbol in marks:
            return marks[symbol]
        # imported here: the feed package pulls orjson, which the Lambdas that load this module do not ship
        from tradingbot.adapters.feed.store import latest_funding

        funding = latest_funding(self._cache, self._price_source, symbol, max_age_s=15.0)
        if funding is not None and funding.mark is not None:
            return funding.mark
        return self._price(symbol)

    def _liquidation_price(
        self, s: Session, wallet: PaperWallet, pos: PaperPosition, positions: list[PaperPosition],
        marks: Mapping[str, Decimal] | None,
    ) -> tuple[Decimal, str]:  # fmt: skip
        table = self._paper_market(pos.symbol).brackets
        mode = paper_repo.paper_margin_mode(s, self._account_id, pos.symbol)
        if mode == "isolated":
            margin = pos.quantity * pos.entry_price / pos.leverage
            return liquidation_price(table, pos.side, pos.quantity, pos.entry_price, margin), mode  # type: ignore[arg-type]
        other_mm = other_upnl = Decimal(0)
        for q in positions:
            if q.symbol == pos.symbol or paper_repo.paper_margin_mode(s, self._account_id, q.symbol) != "cross":
                continue
            mark = self._mark(q.symbol, marks) or q.entry_price
            other_mm += maintenance_margin(self._paper_market(q.symbol).brackets, q.quantity * mark)
            other_upnl += q.quantity * (mark - q.entry_price) * (1 if q.side == "long" else -1)
        lp = liquidation_price(table, pos.side, pos.quantity, pos.entry_price, wallet.balance,  # type: ignore[arg-type]
                               other_maintenance=other_mm, other_upnl=other_upnl)  # fmt: skip
        return lp, mode

    def _liquidate(self, s: Session, wallet: PaperWallet, marks: Mapping[str, Decimal] | None = None) -> list[str]:
        """Close every position whose mark crossed its liquidation price, at that price (rounded to the
        tick); the position's remaining maintenance margin goes to the insurance fund (its fee)."""
        done: list[str] = []
        positions = repo.paper_positions(s, self._account_id)
        for pos in positions:
            mark = self._mark(pos.symbol, marks)
            if mark is None:
                continue
            lp, mode = self._liquidation_price(s, wallet, pos, positions, marks)
            if lp <= 0 or (mark > lp if pos.side == "long" else mark < lp):
                continue
            fill = self.price_to_precision(pos.symbol, lp)
            sign = 1 if pos.side == "long" else -1
            pnl = pos.quantity * (fill - pos.entry_price) * sign
            left = (pos.quantity * pos.entry_price / pos.leverage if mode == "isolated" else wallet.balance) + pnl
            fee = max(Decimal(0), min(maintenance_margin(self._paper_market(pos.symbol).brackets, pos.quantity * fill),
                                      left))  # fmt: skip
            wallet.balance += pnl - fee
            now = dt.datetime.now(dt.UTC)
            cid = f"paper-liq-{self._paper_market(pos.symbol).info.exchange_id}-{int(now.timestamp() * 1000)}"
            repo.add_paper_order(s, PaperOrder(
                account_id=self._account_id, client_order_id=cid, symbol=pos.symbol,
                side="sell" if pos.side == "long" else "buy", type="market", quantity=pos.quantity, price=None,
                trigger_price=None, reduce_only=True, status="filled", filled=pos.quantity, average_price=fill,
                fee=fee, updated_at=now,
            ))  # fmt: skip
            for order in repo.resting_paper_orders(s, self._account_id):
                if order.symbol == pos.symbol and order.reduce_only:
                    order.status, order.updated_at = "canceled", now  # nothing left to reduce
            log.warning("paper account %d: %s %s %s liquidated at %s (mark %s)", self._account_id, pos.side,
                        pos.quantity, pos.symbol, fill, mark)  # fmt: skip
            repo.upsert_paper_position(s, self._account_id, pos.symbol, side=pos.side, quantity=Decimal(0),
                                       entry_price=Decimal(0), leverage=pos.leverage)  # fmt: skip
            done.append(cid)
        return done

    def on_market(
        self, prices: Mapping[str, Decimal] | None = None, marks: Mapping[str, Decimal] | None = None
    ) -> list[str]:
        """One market update for this account, in one transaction: resting orders matched at
        ``prices``, then, when ``marks`` are given, positions liquidated at them. Returns the client
        order ids filled."""
        with self._sessions() as s:
            wallet = self._wallet(s)
            done = self._match(s, wallet, prices)
            if marks:
                done += self._liquidate(s, wallet, marks)
            paper_repo.write_back(s)  # the fill's order, position and wallet rows: one statement, not three
        if done:
            self._book_changed()
        return done

    def cancel_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        with self._sessions() as s:
            order = repo.paper_order(s, self._account_id, client_order_id, lock=True)
            if order is None or order.status != "open":
                raise OrderGone(f"cancel: no open paper order {client_order_id!r}")
            order.status = "canceled"
            order.updated_at = dt.datetime.now(dt.UTC)
        self._book_changed()

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
            wallet = self._wallet(s)
            self._match(s, wallet)
            self._liquidate(s, wallet)
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
            self._liquidate(s, wallet)
            used = self._used_margin(s)
            upl = Decimal(0)
            for p in repo.paper_positions(s, self._account_id):
                mark = self._price(p.symbol) or p.entry_price
                upl += p.quantity * (mark - p.entry_price) * (1 if p.side == "long" else -1)
            return Balance("USDT", total=wallet.balance + upl, free=wallet.balance - used + min(upl, Decimal(0)),
                           used=used, extra={"wallet": str(wallet.balance)})  # fmt: skip

    def settle_funding(
        self, symbol: str, funding_time: dt.datetime, rate: Decimal, mark: Decimal | None = None
    ) -> Decimal | None:
        """Settle the funding of ``funding_time`` at ``rate``: funding = position notional at the mark
        price x rate; a positive rate makes longs pay and shorts receive (Binance: "Funding Amount =
        Nominal Value of Positions x Funding Rate", nominal value = mark price x size; OKX the same).
        Once per (account, symbol, funding time): returns what the account paid (negative: received),
        or None when there was nothing to settle or it was settled before (by us or another matcher)."""
        info = self.market(symbol)
        with self._sessions() as s:
            wallet = self._wallet(s)
            pos = repo.paper_position(s, self._account_id, info.symbol, lock=True)
            mark = mark if mark is not None else self._mark(info.symbol)
            if pos is None or pos.quantity == 0 or mark is None:
                return None
            paid = (pos.quantity * mark * rate * (1 if pos.side == "long" else -1)).quantize(
                FUNDING_QUANTUM, ROUND_HALF_EVEN
            )
            if not paper_repo.record_paper_funding(
                s, self._account_id, info.symbol, funding_time,
                side=pos.side, quantity=pos.quantity, mark_price=mark, rate=rate, amount=paid,
            ):  # fmt: skip
                return None
            wallet.balance -= paid
            pos.funding_paid += paid
        self._book_changed()  # the wallet moved: cross liquidation prices with it
        return paid

    # ---------------------------------------------------------- the ledger, for accounting (issue 15)

    def fetch_account_trades(self, symbol: str, *, since_ms: int, until_ms: int) -> list[VenueTrade]:
        """The paper ledger's executions on ``symbol`` (filled orders and liquidations) with their fee;
        realised PnL None: the accounting sync replays them by this venue's netting rule."""
        info = self.market(symbol)
        with self._sessions() as s:
            return accounting_repo.paper_trades(
                s, self._account_id, info.symbol, since=from_ms(since_ms), until=from_ms(until_ms)
            )

    def fetch_funding_payments(self, *, since_ms: int, until_ms: int) -> list[FundingPayment]:
        """The paper ledger's funding settlements (``paper_funding_payments``), > 0 received."""
        with self._sessions() as s:
            return accounting_repo.paper_funding(s, self._account_id, since=from_ms(since_ms), until=from_ms(until_ms))


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
