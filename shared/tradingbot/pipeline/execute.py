"""The Execute stage: the validated intent -> orders, exactly once (tradingbot.pipeline.order_service).

The decision id that client order ids derive from is the *alert's* idempotency key, not the
execution name: a replay of the same alert re-derives the same ids, so the exchange layer finds
the order already placed instead of sending a second one. ``tradingbot replay --new-order`` adds an
``order_nonce`` to the state, which gives new ids on purpose.
"""

from __future__ import annotations

import threading
from typing import Any

from tradingbot.adapters.persistence.config import envelope_cipher
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.positions import TradeIntent
from tradingbot.pipeline.order_service import default_exchange_factory, execute_intent
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.stages import StageError


def order_decision_id(state: dict[str, Any]) -> str:
    key = state.get("idempotency_key")
    if not key:
        raise StageError("state lacks idempotency_key: cannot derive client order ids")
    nonce = state.get("order_nonce")
    return f"{key}-{nonce}" if nonce else str(key)


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


def execute_stage(rt: Runtime, state: dict[str, Any]) -> dict[str, Any]:
    intent_json = (state.get("validation") or {}).get("intent")
    if not intent_json:
        raise StageError("state has no validated intent")
    intent = TradeIntent.from_validation(order_decision_id(state), intent_json)
    sessions, exchanges = _factory(rt)
    report = execute_intent(sessions, rt.cache(), int(state["account_id"]), intent, exchanges)
    return report.to_dict()
