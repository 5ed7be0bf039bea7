"""A database outage inside each stage is retried by the real state machine (moto's interpreter running
statemachines/trading_pipeline.asl.json) and the execution succeeds once the database is back.

Two kinds of outage, both through the real Lambda edge:

* ``engine``: for the stages that use the database, the first invocation of that stage gets an engine
  whose server is not there (a closed port): the real driver error, turned into ``DatabaseUnavailable``
  by ``session_scope``;
* ``after``: the stage does its work, then the database error is raised before its result is returned
  (the result is lost): the retry must redo the work idempotently (Execute: no second order).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.integration.test_pipeline import alert_body, priced, run_alert
from tradingbot.adapters.persistence.db import create_db_engine, session_scope, unavailable
from tradingbot.adapters.persistence.models import Alert, Order
from tradingbot.entrypoints.lambdas import execute, notify, predict, record_outcome, strategies, validate, vote
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.errors import RETRYABLE_ERROR_NAME
from tradingbot.pipeline.runtime import Runtime

__all__ = ["priced"]  # the fixture, used by name below

# handler module, the stage function it calls, invocations of that stage on the trade path
STAGES: dict[str, tuple[Any, str, int]] = {
    "predict": (predict, "predict_stage", 1),
    "vote": (vote, "vote_stage", 3),
    "strategies": (strategies, "strategies_stage", 1),
    "validate": (validate, "validate_stage", 1),
    "execute": (execute, "execute_stage", 1),
    "notify": (notify, "notify_stage", 1),
    "record_outcome": (record_outcome, "record_outcome_stage", 1),
}
CASES = [
    ("predict", "after"),
    ("vote", "after"),
    ("strategies", "after"),
    ("validate", "engine"),
    ("execute", "engine"),
    ("execute", "after"),
    ("notify", "after"),
    ("record_outcome", "engine"),
]


@pytest.mark.parametrize(("stage", "outage"), CASES, ids=[f"{s}-{o}" for s, o in CASES])
def test_a_database_outage_in_a_stage_is_retried_and_the_execution_succeeds(
    runtime: Runtime, account: tuple[int, str], priced: None, closed_port: int, monkeypatch: pytest.MonkeyPatch,
    stage: str, outage: str,
) -> None:  # fmt: skip
    module, attr, invocations = STAGES[stage]
    real_stage: Callable[..., Any] = getattr(module, attr)
    real_engine = runtime.engine
    dead = create_db_engine(f"postgresql+pg8000://app:secret@127.0.0.1:{closed_port}/gone", connect_timeout_s=1)
    lock = threading.Lock()
    calls = {"n": 0}
    down: dict[str, int | None] = {"thread": None}  # the stage's thread, while its database is away

    def engine() -> Engine:
        # only the failing invocation sees the outage: the test's own polling (describe_execution) and
        # the other executions' threads keep the real database
        return dead if down["thread"] == threading.get_ident() else real_engine()

    def flaky(rt: Runtime, payload: Any) -> Any:
        with lock:
            calls["n"] += 1
            first = calls["n"] == 1
        if first and outage == "engine":
            down["thread"] = threading.get_ident()  # the database goes away for this invocation only
            try:
                return real_stage(rt, payload)
            finally:
                down["thread"] = None
        result = real_stage(rt, payload)
        if first:
            raise unavailable(dead.url, ConnectionRefusedError("connection refused"))
        return result

    monkeypatch.setattr(runtime, "engine", engine)
    monkeypatch.setattr(module, attr, flaky)
    sf = LocalStepFunctions(runtime).start()
    try:
        desc, decision = run_alert(sf, alert_body(account[1]))
        trace = sf.trace(desc["executionArn"])
    finally:
        sf.stop()
        dead.dispose()
    assert desc["status"] == "SUCCEEDED", desc
    assert calls["n"] == invocations + 1  # one retry, of this stage only
    failures = [t for t in trace if t["state"] in ("TaskFailed", "LambdaFunctionFailed")]
    assert failures and all(t["error"] == RETRYABLE_ERROR_NAME for t in failures), failures
    assert decision is not None and decision.final_action == "long", decision.rejection_reason
    assert decision.stages["execution"]["status"] == "filled"
    assert [b["configured"] for b in decision.stages["ballots"]] == [False, False, False]  # no branch abstained
    with session_scope(real_engine()) as s:
        # the retry of a stage that had already placed the order resumed from its rows: one entry order
        assert s.scalar(select(func.count()).select_from(Order).where(Order.type == "market")) == 1
        alert = s.get(Alert, decision.alert_id)
        assert alert is not None and alert.status == "processed"
