"""Position management: what each action means, how big an order is, and what is refused before
anything is sent. Pure functions over the :class:`~tradingbot.domain.exchange.Exchange` interface.

Actions (one-way mode: at most one position per symbol)

=========  ==================  ==================  ==================
action     when flat           when long           when short
=========  ==================  ==================  ==================
long       open long           no-op (no pyramid)  close, open long
short      open short          close, open short   no-op
flat/close no-op               close (reduce-only) close (reduce-only)
reverse    no-op               close, open short   close, open long
=========  ==================  ==================  ==================

Sizing (the account's ``sizing_mode``; an explicit ``quantity`` in the intent wins):

* ``fixed_notional``: ``fixed_notional_usd / price``.
* ``pct_equity``: ``equity_pct`` of equity is the margin, so notional = equity * pct * leverage.
* ``risk_per_trade``: lose ``risk_per_trade_pct`` of equity if the stop is hit:
  ``equity * pct / |price - stop|``; needs a stop-loss (refused otherwise).

A computed size is capped at ``max_position_usd`` of notional (the safe direction); an explicit
quantity above it is refused. Leverage above the account's or the exchange's maximum is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tradingbot.domain.exchange import (
    BelowMinimum,
    Exchange,
    ExchangeError,
    LeverageTooHigh,
    MarginMode,
    OrderType,
    Position,
    Side,
)
from tradingbot.errors import PermanentError

Action = Literal["long", "short", "flat", "close", "reverse"]
SizingMode = Literal["fixed_notional", "pct_equity", "risk_per_trade"]
LegName = Literal["close", "open", "sl", "tp"]
_LEG_CODE = {"close": "c", "open": "o", "sl": "s", "tp": "t"}


class InvalidIntent(ExchangeError, PermanentError):  # noqa: N818
    reason = "invalid_intent"


class TradeIntent(BaseModel):
    """What the Validate stage decided, as the Execute stage receives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: Annotated[
        str, Field(min_length=1, max_length=128, description="stable per decision: seeds the client order ids")
    ]
    symbol: Annotated[str, Field(min_length=3, max_length=32)]
    action: Action
    reference_price: Annotated[Decimal, Field(gt=0)]
    stop_loss: Annotated[Decimal | None, Field(gt=0)] = None
    take_profit: Annotated[Decimal | None, Field(gt=0)] = None
    quantity: Annotated[Decimal | None, Field(gt=0, description="base units; overrides sizing")] = None
    leverage: Annotated[int | None, Field(ge=1, le=1000)] = None
    decision_row_id: int | None = Field(default=None, description="decisions.id, linked from the order rows")

    @classmethod
    def from_validation(
        cls, decision_id: str, intent: dict[str, Any], decision_row_id: int | None = None
    ) -> TradeIntent:
        """From the Validate stage's ``intent`` dict (``direction``, ``price``, ...)."""
        return cls(
            decision_id=decision_id,
            symbol=intent["symbol"],
            action=intent.get("action") or intent["direction"],
            reference_price=intent.get("reference_price") or intent["price"],
            stop_loss=intent.get("stop_loss"),
            take_profit=intent.get("take_profit"),
            quantity=intent.get("quantity"),
            leverage=intent.get("leverage"),
            decision_row_id=decision_row_id,
        )


@dataclass(frozen=True)
class AccountSettings:
    """The account columns the order path reads (a detached copy: no ORM object outlives its session)."""

    id: int
    name: str
    exchange: str
    testnet: bool
    enabled: bool
    max_position_usd: Decimal
    max_leverage: int
    risk_per_trade_pct: Decimal
    sizing_mode: SizingMode
    fixed_notional_usd: Decimal
    equity_pct: Decimal
    margin_mode: MarginMode


@dataclass(frozen=True)
class PlannedLeg:
    leg: LegName
    side: Side
    type: OrderType
    quantity: Decimal
    reduce_only: bool
    trigger_price: Decimal | None = None


def client_order_id(account_id: int, decision_id: str, leg: str) -> str:
    """32 characters of [a-z0-9], the same for every attempt of this leg of this decision.

    Fits both venues: Binance allows 36 of ``[.A-Z:/a-z0-9_-]``, OKX 32 alphanumerics."""
    digest = hashlib.sha256(f"{account_id}|{decision_id}|{leg}".encode()).hexdigest()
    return f"tb{_LEG_CODE.get(leg.split(':', 1)[0], 'x')}{digest[:29]}"  # "sl:0.01:49000:1" is a stop too


#: what every client order id of ours starts with (:func:`client_order_id`); :func:`is_our_client_id`
#: checks the whole shape
CLIENT_ID_PREFIX = "tb"
_OUR_CLIENT_ID = re.compile(r"tb[costx][0-9a-f]{29}")


def is_our_client_id(cid: str) -> bool:
    """Whether ``cid`` has the shape :func:`client_order_id` gives (prefix, leg code, 29 hex digits)."""
    return bool(_OUR_CLIENT_ID.fullmatch(cid))


def plan_action(action: Action, current: Position | None) -> tuple[list[tuple[LegName, Side]], str | None]:
    """The legs an action needs given the current position; (legs, reason when there are none)."""
    side = current.side if current is not None and current.quantity > 0 else None
    close_side: Side = "sell" if side == "long" else "buy"
    if action in ("flat", "close"):
        return ([("close", close_side)], None) if side else ([], "no open position to close")
    if action == "reverse":
        if side is None:
            return [], "no open position to reverse"
        return [("close", close_side), ("open", "buy" if side == "short" else "sell")], None
    want = "long" if action == "long" else "short"
    open_side: Side = "buy" if want == "long" else "sell"
    if side == want:
        return [], f"already {want}; positions are not added to"
    if side is not None:
        return [("close", close_side), ("open", open_side)], None
    return [("open", open_side)], None


def target_side(action: Action, current: Position | None) -> Literal["long", "short"] | None:
    if action in ("long", "short"):
        return action
    if action == "reverse" and current is not None:
        return "short" if current.side == "long" else "long"
    return None


def check_leverage(exchange: Exchange, account: AccountSettings, symbol: str, leverage: int) -> None:
    """Refuse before anything is sent: the account's limit first, then the venue's."""
    if leverage > account.max_leverage:
        raise LeverageTooHigh(symbol, leverage, account.max_leverage, f"account {account.name!r}'s")
    venue_max = exchange.max_leverage(symbol)
    if leverage > venue_max:
        raise LeverageTooHigh(symbol, leverage, venue_max, f"{exchange.name}'s")


def size_quantity(
    account: AccountSettings,
    intent: TradeIntent,
    *,
    equity: Decimal,
    leverage: int,
) -> Decimal:
    """Base quantity before rounding (see the module docstring)."""
    price = intent.reference_price
    cap = account.max_position_usd / price
    if intent.quantity is not None:
        if intent.quantity * price > account.max_position_usd:
            raise InvalidIntent(
                f"quantity: {intent.quantity} ({intent.quantity * price:.2f} USDT) is above account "
                f"{account.name!r}'s max position of {account.max_position_usd} USDT"
            )
        return intent.quantity
    if equity <= 0:
        raise InvalidIntent(f"equity: account {account.name!r} has no equity ({equity} USDT) to size a position")
    if account.sizing_mode == "fixed_notional":
        qty = account.fixed_notional_usd / price
    elif account.sizing_mode == "pct_equity":
        qty = equity * account.equity_pct / 100 * leverage / price
    else:
        if intent.stop_loss is None:
            raise InvalidIntent("stop_loss: risk-per-trade sizing needs a stop-loss price")
        distance = abs(price - intent.stop_loss)
        if distance == 0:
            raise InvalidIntent("stop_loss: equals the entry price; the risk per unit would be zero")
        qty = equity * account.risk_per_trade_pct / 100 / distance
    return min(qty, cap)


def check_protection(
    side: Literal["long", "short"], price: Decimal, stop: Decimal | None, target: Decimal | None
) -> None:
    """A stop on the wrong side of the price would fire at once; refuse it before sending."""
    if stop is not None and ((side == "long" and stop >= price) or (side == "short" and stop <= price)):
        raise InvalidIntent(f"stop_loss: {stop} must be {'below' if side == 'long' else 'above'} {price} for a {side}")
    if target is not None and ((side == "long" and target <= price) or (side == "short" and target >= price)):
        raise InvalidIntent(
            f"take_profit: {target} must be {'above' if side == 'long' else 'below'} {price} for a {side}"
        )


def round_and_check(exchange: Exchange, symbol: str, quantity: Decimal, price: Decimal) -> Decimal:
    """Round with the market's precision, then refuse below the minimum quantity or notional."""
    info = exchange.market(symbol)
    rounded = exchange.amount_to_precision(symbol, quantity)
    if info.min_quantity is not None and rounded < info.min_quantity:
        raise BelowMinimum(info.symbol, "quantity", rounded, info.min_quantity)
    notional = rounded * price
    if info.min_notional is not None and notional < info.min_notional:
        raise BelowMinimum(info.symbol, "notional", notional, info.min_notional)
    return rounded
