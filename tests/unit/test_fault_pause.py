"""``LOCAL_FAULT_PAUSE`` (issue 16's fault drills): one state, or several dealt out round robin by
execution row id, so one `serve` holds an execution inside every stage at once."""

from __future__ import annotations

import pytest

from tradingbot.entrypoints.local.executions import FaultPause


def test_one_state_pauses_every_execution_there() -> None:
    fault = FaultPause.parse("Execute+:60")
    assert fault is not None and (fault.state, fault.after, fault.seconds) == ("Execute", True, 60.0)
    assert {fault.target(k) for k in range(1, 10)} == {("Execute", True)}


def test_several_states_are_dealt_out_by_row_id() -> None:
    fault = FaultPause.parse("Predict, Ensemble,Execute+ :600")
    assert fault is not None and fault.seconds == 600.0
    assert [fault.target(k) for k in range(1, 7)] == [
        ("Predict", False), ("Ensemble", False), ("Execute", True),
        ("Predict", False), ("Ensemble", False), ("Execute", True),
    ]  # fmt: skip


@pytest.mark.parametrize("spec", ["60", ":60", "Predict,:60", "Predict,,Execute:60", "Predict:soon"])
def test_a_spec_without_a_state_is_refused_naming_the_variable(spec: str) -> None:
    with pytest.raises(ValueError, match="LOCAL_FAULT_PAUSE"):
        FaultPause.parse(spec)


def test_empty_is_off() -> None:
    assert FaultPause.parse("  ") is None
