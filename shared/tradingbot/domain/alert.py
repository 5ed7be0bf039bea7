"""The TradingView alert contract and its validation.

TradingView cannot set headers, so the account's token travels in the body. The Pine Script
alert message that produces this body is in README.md ("TradingView alert").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from tradingbot.domain.timeframes import DEFAULT_TIMEFRAME, timeframe_for_interval
from tradingbot.errors import PermanentError

Action = Literal["buy", "sell", "long", "short", "close", "flat"]


def _float_to_decimal(value: Any) -> Any:
    """JSON numbers arrive as floats (56588.03 may be 56588.030000000006): keep 10 decimals, which
    is finer than any exchange's tick, instead of refusing binary noise."""
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(round(value, 10)))
    return value


Number = Annotated[Decimal, BeforeValidator(_float_to_decimal), Field(gt=0, max_digits=20, decimal_places=10)]


class AlertError(PermanentError, ValueError):
    """A refused alert: ``status`` is the HTTP status, ``reason`` a stable code, ``message`` names the field."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class AlertContent(BaseModel):
    """What an alert says, without the token that authenticated it: what the pipeline state, the
    decision records and replays carry. The webhook's body model extends it with the token, so the
    two can never drift apart and no stage needs a placeholder token to read an alert."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    strategy: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    symbol: Annotated[
        str,
        Field(
            min_length=3,
            max_length=32,
            pattern=r"^[A-Za-z0-9]+(\.P)?$",
            description="TradingView ticker, e.g. BTCUSDT or BTCUSDT.P",
        ),
    ]
    action: Action
    price: Number
    time: dt.datetime = Field(description="bar time, ISO-8601 ({{timenow}} in Pine Script)")
    quantity: Number | None = None
    leverage: Annotated[int | None, Field(ge=1, le=125)] = None
    stop_loss: Number | None = None
    take_profit: Number | None = None
    comment: Annotated[str | None, Field(max_length=500, description="free text; data, never instructions")] = None
    interval: Annotated[
        str | None,
        Field(
            max_length=8,
            description="the chart's resolution, TradingView's {{interval}} ('1', '15', '60', '240', '1D', '1W', "
            "'1M'); absent: 1h",
        ),
    ] = None

    @field_validator("symbol")
    @classmethod
    def _normalise_symbol(cls, v: str) -> str:
        return v.upper().removesuffix(".P")

    @field_validator("time")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("must carry a timezone (TradingView's {{timenow}} is UTC with 'Z')")
        return v.astimezone(dt.UTC)

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, v: str | None) -> str | None:
        if v is None:
            return None
        timeframe_for_interval(v)  # TimeframeError is a ValueError: pydantic names the field
        return v

    def timeframe(self) -> str:
        """The ccxt timeframe the alert is judged on (``interval`` mapped; 1h when absent)."""
        return DEFAULT_TIMEFRAME if self.interval is None else timeframe_for_interval(self.interval)

    def direction(self) -> Literal["long", "short", "flat"]:
        return {"buy": "long", "long": "long", "sell": "short", "short": "short"}.get(self.action, "flat")  # type: ignore[return-value]

    def public(self) -> dict[str, Any]:
        """The alert without its token, JSON-ready: what the pipeline and the records carry."""
        return json.loads(self.model_dump_json(exclude={"token"}))  # type: ignore[no-any-return]


class TradingViewAlert(AlertContent):
    """Body of ``POST /webhook/tradingview``: the alert's content and the account's token."""

    token: Annotated[str, Field(min_length=16, max_length=128, description="the account's webhook token")]

    def content(self) -> AlertContent:
        """The same alert without its token (what enters the pipeline)."""
        return AlertContent.model_validate(self.public())


_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z0-9_.]+\s*\}\}")
_PLACEHOLDER_HINT = (
    "TradingView fills placeholders in the alert's message (and a strategy's {{strategy.order.alert_message}}) "
    "when the alert fires; a literal one means the message was sent from elsewhere or the name is misspelt "
    "(`tradingbot pine alert-message --strategy NAME` prints a message that works)"
)


def _unsubstituted(data: dict[str, Any]) -> AlertError | None:
    """A field that still holds a placeholder such as ``{{close}}``: named, with what to do."""
    for key, value in data.items():
        if key != "comment" and isinstance(value, str) and (m := _PLACEHOLDER.search(value)):
            return AlertError(
                422, "unsubstituted_placeholder", f"{key}: {m.group(0)} is a placeholder that was not substituted; "
                f"{_PLACEHOLDER_HINT}",
            )  # fmt: skip
    return None


def parse_alert(body: bytes | str | None, max_bytes: int) -> TradingViewAlert:
    """The alert in ``body``: JSON, whatever the Content-Type said.

    TradingView sends ``application/json`` when the message is valid JSON and ``text/plain``
    otherwise (https://www.tradingview.com/support/solutions/43000529348), so the header is never
    trusted either way: a JSON object in a ``text/plain`` body is accepted. Numbers may arrive
    quoted (``"price": "64000.5"``: a placeholder inside quotes), and TradingView's
    ``{{strategy.order.action}}`` values ``buy`` / ``sell`` are actions.
    """
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > max_bytes:
        raise AlertError(413, "body_too_large", f"body is {len(raw)} bytes; the limit is {max_bytes}")
    if not raw.strip():
        raise AlertError(400, "empty_body", "body is empty; expected a JSON object")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        found = _PLACEHOLDER.search(raw.decode("utf-8", errors="replace"))
        if found:
            raise AlertError(
                400, "unsubstituted_placeholder",
                f"body is not valid JSON: it holds {found.group(0)}, a placeholder that was not substituted; "
                f"{_PLACEHOLDER_HINT}",
            ) from None  # fmt: skip
        raise AlertError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AlertError(400, "malformed_json", "body must be a JSON object")
    if (unsubstituted := _unsubstituted(data)) is not None:
        raise unsubstituted
    try:
        return TradingViewAlert.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise AlertError(422, "invalid_field", f"{field}: {first['msg']}") from None


def check_freshness(alert: AlertContent, now: dt.datetime, max_age_s: int) -> None:
    age = (now - alert.time).total_seconds()
    if age > max_age_s:
        raise AlertError(422, "stale_alert", f"time: alert is {age:.0f} s old; the limit is {max_age_s} s")
    if age < -max_age_s:
        raise AlertError(422, "future_alert", f"time: alert is {-age:.0f} s in the future")


def idempotency_key(account_id: int, alert: AlertContent) -> str:
    """Same account + same alert content = same key, however often TradingView delivers it.

    The key is also the Step Functions execution name (max 80 chars, [A-Za-z0-9-_]).
    """
    # ``interval`` joins the key only when sent, so keys of alerts without it are what they always were
    content = alert.model_dump_json(exclude={"token", "comment"} | ({"interval"} if alert.interval is None else set()))
    digest = hashlib.sha256(f"{account_id}|{content}".encode()).hexdigest()[:40]
    return f"tv-{account_id}-{digest}"
