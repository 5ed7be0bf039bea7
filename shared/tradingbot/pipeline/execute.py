"""The Execute stage: the validated intent -> orders, exactly once (tradingbot.pipeline.order_service).

The decision id that client order ids derive from is the *alert's* idempotency key, not the
execution name: a replay of the same alert re-derives the same ids, so the exchange layer finds
the order already placed instead of sending a second one. ``tradingbot replay --new-order`` adds an
``order_nonce`` to the state, which gives new ids on purpose. The same property makes the stage safe
to retry after a timeout or a dependency outage: the retry resumes from the stored order rows.
"""

from __future__ import annotations

import threading
from typing import Any

from tradingbot.adapters.persistence.config import envelope_cipher
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.positions import TradeIntent
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import ExecutionResult, PipelineState
from tradingbot.pipeline.order_service import default_exchange_factory, execute_intent
from tradingbot.pipeline.runtime import Runtime


def order_decision_id(state: PipelineState) -> str:
    key = state.idempotency_key
    return f"{key}-{state.order_nonce}" if state.order_nonce else key


_lock = threading.Lock()


def _factory(rt: Runtime) -> tuple[Any, Any]:
    """(session factory, exchange factory), built once per runtime (cold start): ccxt clients and
    their loaded markets are reused by later invocations of the same container."""
    with _lock:
        cached: tuple[Any, Any] | None = getattr(rt, "_exchange_factories", None)
        if cached is None:

            def sessions() -> Any:
                return session_scope(rt.engine())

            cached = (sessions, default_exchange_factory(sessions, rt.cache(), envelope_cipher(rt.persistence)))
            rt._exchange_factories = cached  # type: ignore[attr-defined]  # lives as long as the runtime
        return cached


def execute_stage(rt: Runtime, state: PipelineState) -> ExecutionResult:
    if state.validation is None:
        raise StageError("state has no validated intent")
    intent = TradeIntent.from_validation(order_decision_id(state), state.validation.intent.to_json())
    sessions, exchanges = _factory(rt)
    report = execute_intent(sessions, rt.cache(), state.account_id, intent, exchanges)
    return ExecutionResult.model_validate(report.to_dict())
