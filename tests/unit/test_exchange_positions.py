"""Action semantics, sizing and client order ids: pure functions, no I/O."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tradingbot.domain.exchange import Position
from tradingbot.domain.positions import (
    AccountSettings,
    InvalidIntent,
    TradeIntent,
    check_protection,
    client_order_id,
    plan_action,
    size_quantity,
)

LONG = Position("BTC/USDT:USDT", "long", Decimal("0.1"), Decimal(50000))
SHORT = Position("BTC/USDT:USDT", "short", Decimal("0.1"), Decimal(50000))


def _account(mode: str = "risk_per_trade", **kw: object) -> AccountSettings:
    base: dict[str, object] = {
        "id": 1, "name": "a", "exchange": "paper", "testnet": True, "enabled": True,
        "max_position_usd": Decimal(100_000), "max_leverage": 10, "risk_per_trade_pct": Decimal(1),
        "sizing_mode": mode, "fixed_notional_usd": Decimal(500), "equity_pct": Decimal(10), "margin_mode": "isolated",
    }  # fmt: skip
    base.update(kw)
    return AccountSettings(**base)  # type: ignore[arg-type]


def _intent(**kw: object) -> TradeIntent:
    fields: dict[str, object] = {"decision_id": "d", "symbol": "BTCUSDT", "action": "long", "reference_price": 50000}
    fields.update(kw)
    return TradeIntent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "current", "legs", "reason"),
    [
        ("long", None, [("open", "buy")], None),
        ("long", LONG, [], "already long; positions are not added to"),
        ("long", SHORT, [("close", "buy"), ("open", "buy")], None),
        ("short", LONG, [("close", "sell"), ("open", "sell")], None),
        ("flat", None, [], "no open position to close"),
        ("close", SHORT, [("close", "buy")], None),
        ("reverse", LONG, [("close", "sell"), ("open", "sell")], None),
        ("reverse", None, [], "no open position to reverse"),
    ],
)
def test_actions(action: str, current: Position | None, legs: list[tuple[str, str]], reason: str | None) -> None:
    assert plan_action(action, current) == (legs, reason)  # type: ignore[arg-type]


def test_sizing_modes() -> None:
    equity = Decimal(10_000)
    # fixed: 500 USDT / 50,000
    assert size_quantity(_account("fixed_notional"), _intent(), equity=equity, leverage=3) == Decimal("0.01")
    # % equity as margin: 10% of 10,000 = 1,000 margin x 3 = 3,000 notional
    assert size_quantity(_account("pct_equity"), _intent(), equity=equity, leverage=3) == Decimal("0.06")
    # risk: 1% of 10,000 = 100 USDT over a 500 USDT stop distance = 0.2 BTC
    assert size_quantity(_account(), _intent(stop_loss=49500), equity=equity, leverage=1) == Decimal("0.2")
    # capped at the account's max position (safe direction) ...
    capped = size_quantity(
        _account(max_position_usd=Decimal(1000)), _intent(stop_loss=49500), equity=equity, leverage=1
    )
    assert capped == Decimal("0.02")
    # ... but an explicit quantity above it is refused, not silently cut
    with pytest.raises(InvalidIntent, match=r"^quantity: 1 \(50000.00 USDT\) is above account 'a'"):
        size_quantity(_account(max_position_usd=Decimal(1000)), _intent(quantity=1), equity=equity, leverage=1)
    with pytest.raises(InvalidIntent, match=r"^stop_loss: risk-per-trade sizing needs a stop-loss price"):
        size_quantity(_account(), _intent(), equity=equity, leverage=1)


def test_protection_on_the_wrong_side_is_refused() -> None:
    check_protection("long", Decimal(100), Decimal(95), Decimal(110))
    with pytest.raises(InvalidIntent, match="stop_loss: 105 must be below 100 for a long"):
        check_protection("long", Decimal(100), Decimal(105), None)
    with pytest.raises(InvalidIntent, match="take_profit: 110 must be below 100 for a short"):
        check_protection("short", Decimal(100), None, Decimal(110))


def test_client_order_ids_are_deterministic_and_fit_both_venues() -> None:
    a = client_order_id(1, "tv-1-abc", "open")
    assert a == client_order_id(1, "tv-1-abc", "open")
    assert len({a, client_order_id(1, "tv-1-abc", "sl"), client_order_id(2, "tv-1-abc", "open")}) == 3
    assert re.fullmatch(r"[a-z0-9]{32}", a)  # OKX: <= 32 alphanumerics; Binance: <= 36 of [.A-Z:/a-z0-9_-]


def test_intent_from_the_validate_stage() -> None:
    doc = {"direction": "short", "symbol": "ETHUSDT", "price": "3000", "stop_loss": "3100", "take_profit": "2800",
           "quantity": None, "leverage": 2}  # fmt: skip
    intent = TradeIntent.from_validation("tv-9", doc, decision_row_id=4)
    assert (intent.action, intent.reference_price, intent.stop_loss, intent.decision_row_id) == (
        "short", Decimal(3000), Decimal(3100), 4
    )  # fmt: skip
