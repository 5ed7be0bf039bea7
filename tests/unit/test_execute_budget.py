"""The execute stage's time budget fits the execute Lambda's timeout, and the state machine's
Execute TimeoutSeconds is that timeout + 5 s (statemachines/trading_pipeline.asl.json)."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tradingbot.pipeline.order_service import (
    BudgetExhausted,
    Deadline,
    RetryPolicy,
    _Budgeted,
    default_exchange_factory,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))

from tradingbot_infra.functions import FUNCTIONS_BY_NAME  # noqa: E402


def _asl_execute_timeout() -> int:
    doc = json.loads((ROOT / "statemachines" / "trading_pipeline.asl.json").read_text())
    return int(doc["States"]["Execute"]["TimeoutSeconds"])


def test_the_worst_case_fits_the_lambda_timeout_and_the_state_timeout() -> None:
    policy = RetryPolicy()
    lambda_timeout = FUNCTIONS_BY_NAME["execute"].timeout_s
    # the ccxt client's per-request timeout the budget is computed with is the one the stage uses
    timeout_ms = inspect.signature(default_exchange_factory).parameters["timeout_ms"].default
    assert policy.request_timeout_s == timeout_ms / 1000
    assert policy.worst_case_s() == policy.budget_s + policy.local_allowance_s == 50
    assert policy.worst_case_s() <= lambda_timeout - 5, "room for the cold start's handler set-up"
    assert _asl_execute_timeout() == lambda_timeout + 5
    # the plan lease outlives any holder: a Lambda is stopped at its timeout at the latest
    assert policy.lease_ttl_s() >= lambda_timeout


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _SlowVenue:
    """Every venue call takes the full request timeout (the worst case), on a fake clock."""

    name = "slow"

    def __init__(self, clock: _Clock, timeout_s: float) -> None:
        self.clock, self.timeout_s, self.calls = clock, timeout_s, 0

    def _take(self, requests: int = 1) -> None:
        self.calls += 1
        self.clock.now += self.timeout_s * requests

    def fetch_positions(self, *_: Any) -> list[Any]:
        self._take()
        return []

    def create_order(self, *_: Any) -> None:
        self._take(2)

    def price_to_precision(self, _symbol: str, price: Any) -> Any:
        return price  # local: never counted against the budget


def test_no_venue_call_starts_unless_it_can_end_inside_the_budget() -> None:
    clock = _Clock()
    policy = RetryPolicy()
    venue = _SlowVenue(clock, policy.request_timeout_s)
    guarded: Any = _Budgeted(venue, Deadline(policy.budget_s, clock), policy.request_timeout_s)  # type: ignore[arg-type]
    with pytest.raises(BudgetExhausted) as info:
        while True:
            guarded.create_order() if venue.calls % 2 else guarded.fetch_positions()
    assert clock.now <= policy.budget_s  # everything that started also ended inside the budget
    assert venue.calls == 5  # 5 + 10 + 5 + 10 + 5 = 35 s; a 10 s create no longer fits in the last 5 s
    assert "create order" in str(info.value)
    assert guarded.price_to_precision("BTC", 1) == 1
