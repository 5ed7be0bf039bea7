"""The Execute stage: the validated intent -> orders, exactly once (tradingbot.pipeline.order_service).

The decision id that client order ids derive from is the *alert's* idempotency key, not the
execution name: a replay of the same alert re-derives the same ids, so the exchange layer finds
the order already placed instead of sending a second one. ``tradingbot replay --new-order`` adds an
``order_nonce`` to the state, which gives new ids on purpose. The same property makes the stage safe
to retry after a timeout or a dependency outage: the retry resumes from the stored order rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tradingbot import errors
from tradingbot.adapters.persistence.config import envelope_cipher
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.positions import TradeIntent
from tradingbot.pipeline.accounting import SyncPolicy, sync_after_execution
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import ExecutionResult, PipelineState
from tradingbot.pipeline.order_service import default_exchange_factory, execute_intent, load_account
from tradingbot.pipeline.runtime import Runtime


def order_decision_id(state: PipelineState) -> str:
    key = state.idempotency_key
    return f"{key}-{state.order_nonce}" if state.order_nonce else key


_lock = threading.Lock()
_EXECUTE_LAMBDA_TIMEOUT_S = 60.0  # cdk/tradingbot_infra/functions.py "execute"


def exchange_factories(rt: Runtime) -> tuple[Any, Any]:
    """(session factory, exchange factory), built once per runtime (cold start): ccxt clients and
    their loaded markets are reused by later invocations of the same container. Live accounts reach
    their venue on the ``EXCHANGE_*`` hosts or their own ``venue_urls`` (the reconcile Lambda and
    ``tradingbot serve``'s reconcile loop use the same factory)."""
    with _lock:
        cached: tuple[Any, Any] | None = getattr(rt, "_exchange_factories", None)
        if cached is None:

            def sessions() -> Any:
                return session_scope(rt.engine())

            factory = default_exchange_factory(
                sessions, rt.cache(), envelope_cipher(rt.persistence), endpoints=rt.config.exchange
            )
            cached = (sessions, factory)
            rt._exchange_factories = cached  # type: ignore[attr-defined]  # lives as long as the runtime
        return cached


_factory = exchange_factories  # the name other modules import (operator_api)


def execute_stage(
    rt: Runtime, state: PipelineState, *, time_left_s: Callable[[], float] | None = None
) -> ExecutionResult:
    """``time_left_s``: the time left for the accounting sync after the orders (default: the execute
    Lambda's 60 s counted from this call), which runs only while more than
    ``EXCHANGE_ACCOUNTING_EXECUTE_RESERVE_S`` of it is left."""
    if state.validation is None:
        raise StageError("state has no validated intent")
    started = time.monotonic()
    intent = TradeIntent.from_validation(order_decision_id(state), state.validation.intent.to_json())
    sessions, exchanges = exchange_factories(rt)
    report = execute_intent(sessions, rt.cache(), state.account_id, intent, exchanges)
    _sync_accounting(rt, sessions, exchanges, state.account_id, report.status, time_left_s, started)
    return ExecutionResult.model_validate(report.to_dict())


def _sync_accounting(
    rt: Runtime, sessions: Any, exchanges: Any, account_id: int, status: str,
    time_left_s: Callable[[], float] | None, started: float,
) -> None:  # fmt: skip
    """Issue 15: the venue's fees, realised PnL, funding and equity right after the orders, so the
    next decision's risk limits see them; best effort (reconcile repeats it every pass)."""
    cfg = rt.config.exchange
    if not cfg.accounting_after_execute or status in ("rejected", "no_op"):
        return
    # without a Lambda context: the execute Lambda's 60 s from the stage's start
    left = time_left_s or (lambda: _EXECUTE_LAMBDA_TIMEOUT_S - (time.monotonic() - started))
    account = load_account(sessions, account_id)
    if account is None:
        return
    try:
        exchange = exchanges(account)
    except errors.TradingBotError:
        return
    sync_after_execution(sessions, exchange, account_id, time_left_s=left, reserve_s=cfg.accounting_execute_reserve_s,
                         policy=SyncPolicy.from_settings(cfg))  # fmt: skip
