"""The TradingView alert contract."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from tradingbot.domain.alert import AlertError, idempotency_key, parse_alert

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def body(**over: object) -> bytes:
    base = {"token": "t" * 32, "strategy": "bollinger", "symbol": "BTCUSDT.P", "action": "buy",
            "price": 56588.03, "time": "2026-11-25T10:00:00Z"}  # fmt: skip
    return json.dumps(base | over).encode()


def test_float_noise_in_prices_is_rounded_not_refused() -> None:
    alert = parse_alert(body(price=56588.0 + 3 * 0.01, stop_loss=0.1 + 0.2), 8192)
    assert alert.price == Decimal("56588.03") and alert.stop_loss == Decimal("0.3")
    assert alert.symbol == "BTCUSDT" and alert.direction() == "long"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"price": -1}, "price"),
        ({"price": "1e400"}, "price"),
        ({"symbol": "BTC/USDT"}, "symbol"),
        ({"leverage": 0}, "leverage"),
    ],
)
def test_invalid_fields_are_named(over: dict[str, object], field: str) -> None:
    with pytest.raises(AlertError) as info:
        parse_alert(body(**over), 8192)
    assert info.value.status == 422 and info.value.message.startswith(field)


def test_idempotency_key_ignores_the_token_and_comment_but_not_the_content() -> None:
    a = parse_alert(body(comment="first"), 8192)
    b = parse_alert(body(comment="second", token="u" * 32), 8192)
    c = parse_alert(body(price=56588.04), 8192)
    assert idempotency_key(1, a) == idempotency_key(1, b) != idempotency_key(1, c)
    assert idempotency_key(1, a) != idempotency_key(2, a)
    assert len(idempotency_key(1, a)) <= 80


def test_the_pipeline_alert_is_the_body_without_its_token() -> None:
    from pydantic import ValidationError

    from tradingbot.domain.alert import AlertContent, TradingViewAlert

    alert = parse_alert(body(comment="first"), 8192)
    content = alert.content()
    assert type(content) is AlertContent and isinstance(alert, AlertContent)
    assert "token" not in content.public() and content.public() == alert.public()
    # the same content keys the same execution, with or without the token
    assert idempotency_key(1, content) == idempotency_key(1, alert)
    assert AlertContent.model_validate(alert.public()) == content
    with pytest.raises(ValidationError, match="token"):
        AlertContent.model_validate(alert.public() | {"token": "t" * 32})
    assert set(TradingViewAlert.model_fields) - set(AlertContent.model_fields) == {"token"}
