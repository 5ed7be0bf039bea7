"""What TradingView really sends reaches the webhook intact (issue 19).

TradingView posts ``application/json`` when the alert message is valid JSON and ``text/plain``
otherwise (https://www.tradingview.com/support/solutions/43000529348); placeholders inside quotes
arrive as strings; an exported Pine strategy's alert bodies are accepted as they are.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.integration.test_webhook import event_with, executions, stored
from tradingbot.domain.pine import TOKEN_PLACEHOLDER, alert_message, export_script
from tradingbot.domain.pine.check import check_script
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.runner import LocalStepFunctions


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(body: str, content_type: str) -> dict[str, Any]:
    event = event_with(body)
    event["headers"] = {**(event.get("headers") or {}), "Content-Type": content_type}
    event.setdefault("multiValueHeaders", {})["Content-Type"] = [content_type]
    answer: dict[str, Any] = webhook_handler(event, None)
    return answer


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "text/plain; charset=utf-8"])
def test_json_body_is_accepted_whatever_the_content_type(
    local: LocalStepFunctions, account: tuple[int, str], content_type: str
) -> None:
    body = json.dumps({"token": account[1], "strategy": "ema_crossover", "symbol": "BTCUSDT.P",
                       "action": "buy", "price": 64000.5, "time": _now(), "interval": "60"})  # fmt: skip
    answer = _post(body, content_type)
    assert answer["statusCode"] == 202, answer["body"]
    assert executions(local) == 1


def test_the_users_alert_message_with_tradingviews_substitution_is_accepted(
    local: LocalStepFunctions, account: tuple[int, str]
) -> None:
    """`pine alert-message`, with placeholders replaced the way TradingView does (price unquoted, the
    market position as the action), is a body the webhook accepts, sent as text/plain or JSON."""
    message = alert_message(strategy="rsi_ema").replace(TOKEN_PLACEHOLDER, account[1])
    values = {"{{ticker}}": "ETHUSDT.P", "{{strategy.market_position}}": "short", "{{close}}": "3120.25",
              "{{timenow}}": _now(), "{{interval}}": "240"}  # fmt: skip
    for placeholder, value in values.items():
        message = message.replace(placeholder, value)
    answer = _post(message, "text/plain")
    assert answer["statusCode"] == 202, answer["body"]
    row = stored(local)[-1]
    assert row.status in ("accepted", "processed", "rejected") and '"interval":"240"' in row.raw_body


def test_quoted_numbers_are_numbers(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    body = json.dumps({"token": account[1], "strategy": "supertrend", "symbol": "BTCUSDT", "action": "sell",
                       "price": "64000.5", "quantity": "0.010", "time": _now()})  # fmt: skip
    answer = _post(body, "application/json")
    assert answer["statusCode"] == 202, answer["body"]
    assert '"price":"64000.5"' in stored(local)[-1].raw_body.replace(" ", "")


@pytest.mark.parametrize(
    ("price", "status"),
    [('"{{close}}"', 422), ("{{close}}", 400)],
    ids=["quoted", "bare (not JSON)"],
)
def test_an_unsubstituted_placeholder_is_named(
    local: LocalStepFunctions, account: tuple[int, str], price: str, status: int
) -> None:
    body = (f'{{"token": "{account[1]}", "strategy": "ema_crossover", "symbol": "BTCUSDT", "action": "buy", '
            f'"price": {price}, "time": "{_now()}"}}')  # fmt: skip
    answer = _post(body, "text/plain")
    assert answer["statusCode"] == status
    error = json.loads(answer["body"])
    assert error["error"] == "unsubstituted_placeholder" and "{{close}}" in error["message"]
    assert executions(local) == 0


@pytest.mark.parametrize("strategy", ["ema_crossover", "ichimoku"])
def test_an_exported_strategys_alert_bodies_are_accepted(
    local: LocalStepFunctions, account: tuple[int, str], strategy: str
) -> None:
    """Every alert_message of an exported script, as the checker evaluates it, is posted for real."""
    report = check_script(export_script(strategy=strategy, stop_loss_pct=2.0))
    bodies = [site.body for site in report.alerts if site.body is not None]
    entries = [b for b in bodies if b["action"] in ("long", "short")]
    assert len(bodies) == len(report.alerts) == 6 and len(entries) == 2
    for body in entries:  # one long, one short: distinct alerts, both accepted
        answer = _post(json.dumps({**body, "token": account[1], "time": _now()}), "application/json")
        assert answer["statusCode"] == 202, answer["body"]
    assert executions(local) == 2
