"""The exchange interface the order path talks to, its domain types and its errors.

Two implementations: :class:`~tradingbot.adapters.exchange.ccxt_adapter.CcxtExchange` (Binance USDT-M
futures and OKX swaps through ccxt) and :class:`~tradingbot.adapters.exchange.paper.PaperExchange`
(fills at cached prices, state in PostgreSQL). Everything above this interface (sizing, the
exactly-once order service, reconciliation) is written once against it.

Quantities are always in the base asset (0.01 = 0.01 BTC), prices in the quote asset (USDT);
an adapter converts to the venue's unit (OKX counts contracts) and rounds with the market's
precision. Every error names the field and the reason, and never contains a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from tradingbot import errors

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop_market", "take_profit_market"]
OrderStatus = Literal["open", "partially_filled", "filled", "canceled", "rejected"]
MarginMode = Literal["isolated", "cross"]
PositionSide = Literal["long", "short"]

TERMINAL: frozenset[str] = frozenset({"filled", "canceled", "rejected"})


# ------------------------------------------------------------------ errors


class ExchangeError(errors.TradingBotError):
    """The family of venue errors, never raised itself: each leaf is also a
    :class:`~tradingbot.errors.PermanentError` (a refusal: the order was not placed, or is already)
    or a :class:`~tradingbot.errors.TransientError` (unavailable or rate limited: ask again later).
    ``reason`` is a stable code stored with a rejection; ``str()`` is for people."""

    reason = "exchange_error"
    # True when the order certainly did not reach the book: safe to report as rejected
    definitely_not_placed = True


class UnknownSymbol(ExchangeError, errors.PermanentError):  # noqa: N818 - the issue names these errors
    reason = "unknown_symbol"

    def __init__(self, symbol: str, exchange: str) -> None:
        super().__init__(f"symbol: {symbol!r} is not a USDT-margined perpetual on {exchange}")
        self.symbol = symbol


class BelowMinimum(ExchangeError, errors.PermanentError):  # noqa: N818
    reason = "below_minimum"

    def __init__(self, symbol: str, what: Literal["quantity", "notional"], value: Decimal, minimum: Decimal) -> None:
        unit = "USDT" if what == "notional" else "base units"
        super().__init__(
            f"{what}: {value.normalize():f} {unit} for {symbol} is below the exchange's minimum of "
            f"{minimum.normalize():f} {unit} (after rounding to the market's precision)"
        )
        self.what = what


class LeverageTooHigh(ExchangeError, errors.PermanentError):  # noqa: N818
    reason = "leverage_too_high"

    def __init__(self, symbol: str, leverage: int, maximum: int, whose: str) -> None:
        super().__init__(f"leverage: {leverage}x for {symbol} is above {whose} maximum of {maximum}x")


class InsufficientMargin(ExchangeError, errors.PermanentError):  # noqa: N818
    reason = "insufficient_margin"


class OrderRejected(ExchangeError, errors.PermanentError):  # noqa: N818
    reason = "order_rejected"


class OrderGone(ExchangeError, errors.PermanentError):  # noqa: N818
    """A cancel found no such OPEN order on the venue: it filled, was cancelled, or never existed.
    The caller looks it up to learn which; nothing is on the book under that id either way."""

    reason = "order_gone"


class MissingCredentials(ExchangeError, errors.PermanentError):  # noqa: N818
    reason = "missing_credentials"


class DuplicateOrder(ExchangeError, errors.PermanentError):  # noqa: N818
    """The venue already has an order with this client id: for us, "already placed"."""

    reason = "duplicate_client_order_id"
    definitely_not_placed = False


class HedgeModeUnsupported(ExchangeError, errors.PermanentError):  # noqa: N818
    """The account holds long and short positions per symbol (Binance Hedge Mode, OKX
    ``long_short_mode``): the order path speaks one-way mode only, so it refuses before sending."""

    reason = "hedge_mode_unsupported"


class LeverageUnknown(ExchangeError, errors.PermanentError):  # noqa: N818
    """The venue published no leverage limit for the symbol (no bracket, no ``lever``): refused,
    never assumed (a guessed 125x could exceed what the venue allows this account)."""

    reason = "leverage_unknown"


class RateLimited(ExchangeError, errors.RateLimited):  # noqa: N818
    """429/418: the request was refused before it was processed; retry after ``retry_after_s``.
    Transient; unlike :class:`tradingbot.errors.RateLimited` it takes ``retry_after_s`` positionally."""

    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, retry_after_s=retry_after_s)


class ExchangeUnavailable(ExchangeError, errors.DependencyUnavailable):  # noqa: N818
    """Timeout, connection error or 5xx: whether a create reached the book is UNKNOWN, so the
    caller must look the order up by its client id before it sends anything again."""

    reason = "exchange_unavailable"
    definitely_not_placed = False


class ExchangeFailedNotPlaced(ExchangeError, errors.DependencyUnavailable):  # noqa: N818
    """The venue answered that it failed the request without executing it, in words it documents
    as "a failure API operation" (Binance USD-M's 503 "Service Unavailable." and "Internal error;
    unable to process your request. Please try again.", general info, HTTP return codes): nothing
    was placed, so the same request (the same client id) may be sent again. Transient."""

    reason = "exchange_failed_not_placed"
    definitely_not_placed = True


# ------------------------------------------------------------------ domain types


@dataclass(frozen=True)
class MarketInfo:
    """What the order path needs to know about one perpetual: all limits in base units / USDT."""

    symbol: str  # ccxt unified, e.g. "BTC/USDT:USDT"
    exchange_id: str  # the venue's own id, e.g. "BTCUSDT" or "BTC-USDT-SWAP"
    min_quantity: Decimal | None
    min_notional: Decimal | None
    max_leverage: int | None
    contract_size: Decimal = Decimal(1)


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None  # limit price
    trigger_price: Decimal | None = None  # stop_market / take_profit_market
    reduce_only: bool = False


@dataclass(frozen=True)
class OrderResult:
    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    # None = not known yet (Binance's order answers carry no commission and its trade list can lag):
    # stored as unknown, filled in by the accounting sync from the venue's trade list
    fee: Decimal | None = Decimal(0)
    reduce_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Position:
    symbol: str
    side: PositionSide
    quantity: Decimal  # > 0, base units
    entry_price: Decimal
    leverage: int = 1
    unrealized_pnl: Decimal = Decimal(0)


@dataclass(frozen=True)
class Balance:
    currency: str
    total: Decimal  # wallet balance + unrealised PnL (equity)
    free: Decimal  # available for new margin
    used: Decimal = Decimal(0)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VenueFill:
    """One execution from the venue's trade list (Binance ``userTrades``, OKX ``fills-history``).
    ``client_order_id`` is None where the venue's trade list does not carry it (Binance)."""

    trade_id: str
    exchange_order_id: str
    client_order_id: str | None
    side: Side
    price: Decimal
    quantity: Decimal  # base units
    fee: Decimal  # in ``fee_currency``: never added to a fee in another currency
    ts_ms: int
    fee_currency: str = "USDT"  # Binance ``commissionAsset`` (BNB with the BNB discount on), OKX ``feeCcy``


def usdt_fee(fills: Sequence[VenueFill]) -> Decimal | None:
    """The fills' total fee in USDT, or None when any fee is in another currency (Binance charges
    the fee in BNB when the account's BNB discount is on: "Users will receive a 10% discount ... when
    they use BNB to pay for trading fees", https://www.binance.com/en/support/faq/360033544231; the
    trade list gives the BNB amount, not the rate it was converted at): None = not known in USDT,
    so the fill is stored with its fee pending and the accounting sync writes the venue's amount
    WITH its currency. A BNB amount is never added to a USDT amount."""
    if any(f.fee_currency != "USDT" for f in fills):
        return None
    return sum((f.fee for f in fills), Decimal(0))


@runtime_checkable
class Exchange(Protocol):
    """The subset of a futures venue the order path uses. Implementations are synchronous: one
    Lambda invocation handles one decision, and every call has its own timeout."""

    name: str

    def load_markets(self) -> None: ...

    def market(self, symbol: str) -> MarketInfo:
        """The market for a ccxt symbol or a TradingView ticker (BTCUSDT); UnknownSymbol if none."""
        ...

    def max_leverage(self, symbol: str) -> int: ...

    def amount_to_precision(self, symbol: str, quantity: Decimal) -> Decimal:
        """``quantity`` truncated to the market's step (BelowMinimum if that leaves nothing)."""
        ...

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal: ...

    def set_leverage(self, symbol: str, leverage: int) -> None: ...

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None: ...

    def create_order(self, request: OrderRequest) -> OrderResult: ...

    def cancel_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None: ...

    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool = False
    ) -> OrderResult | None:
        """The order with this client id, or None when the venue positively says it has none."""
        ...

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]: ...

    def fetch_balance(self) -> Balance: ...


@runtime_checkable
class VenueAccountChecks(Protocol):
    """Optional: venues whose account can be in a mode the order path does not speak."""

    def check_position_mode(self) -> None:
        """Raise :class:`HedgeModeUnsupported` when the account is in hedge mode."""
        ...


@runtime_checkable
class TradeHistory(Protocol):
    """Optional: the venue's own record of executions, the second way to find an order whose
    create answer was lost (the order lookup can lag the matching engine)."""

    def fetch_fills(
        self, symbol: str, *, since_ms: int, until_ms: int, exchange_order_id: str | None = None
    ) -> list[VenueFill]: ...


@runtime_checkable
class MarkPrice(Protocol):
    """Optional: the venue's current mark price of a symbol (reconcile checks it before it sends an
    entry again: :class:`tradingbot.pipeline.reconcile.ResendGuard`)."""

    def fetch_mark_price(self, symbol: str) -> Decimal: ...


@dataclass(frozen=True)
class VenueOpenOrder:
    """An order the venue holds open on the account, as its open-orders lists show it (reconcile
    compares them with our rows to find orphans)."""

    symbol: str
    client_order_id: str  # "" when the venue shows none
    exchange_order_id: str
    side: str
    type: str  # the venue's own type, e.g. "LIMIT", "STOP_MARKET", "conditional"
    quantity: Decimal
    conditional: bool


@runtime_checkable
class OpenOrders(Protocol):
    """Optional: every open order of the account, regular and conditional, on every symbol."""

    def fetch_open_orders(self) -> list[VenueOpenOrder]: ...
