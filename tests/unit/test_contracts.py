"""The pipeline's contracts: the committed JSON Schema, the sample events, and the ASL that must agree
with them (ResultPaths = state fields; one retryable error name; bounded timeouts on every Task)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tradingbot.errors import RETRYABLE_ERROR_NAME
from tradingbot.pipeline.contracts import (
    RESULT_KEYS,
    PipelineState,
    RecordRequest,
    VoteRequest,
    render_state_json_schema,
    state_json_schema,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "pipeline-state.schema.json"
ASL = ROOT / "statemachines" / "trading_pipeline.asl.json"
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                 "Lambda.TooManyRequestsException"}  # fmt: skip
TIMEOUTS = {"States.Timeout", "Sandbox.Timedout"}


def test_the_committed_schema_is_the_generated_one() -> None:
    # regenerate with: python -m tradingbot.pipeline.contracts > docs/pipeline-state.schema.json
    assert SCHEMA.read_text() == render_state_json_schema()
    jsonschema.Draft202012Validator.check_schema(state_json_schema())


def _pipeline_state_events() -> list[Path]:
    """Every events/ file that is a pipeline state (it carries an alert and an idempotency key)."""
    out = []
    for path in sorted((ROOT / "events").glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and {"alert", "idempotency_key"} <= set(data) and "voter" not in data:
            out.append(path)
    return out


def test_there_are_pipeline_state_events() -> None:
    assert [p.name for p in _pipeline_state_events()] == ["pipeline_input.json"]


@pytest.mark.parametrize("path", _pipeline_state_events(), ids=lambda p: p.name)
def test_every_pipeline_state_event_validates_against_the_schema(path: Path) -> None:
    data = json.loads(path.read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(data)]
    assert errors == []
    parsed = PipelineState.model_validate(data)
    assert set(parsed.dump()) == set(data) and PipelineState.model_validate(parsed.dump()) == parsed


def test_the_vote_event_is_a_vote_request() -> None:
    VoteRequest.model_validate(json.loads((ROOT / "events" / "vote_input.json").read_text()))


def test_a_state_at_the_end_of_the_trade_path_round_trips() -> None:
    state = json.loads((ROOT / "events" / "pipeline_input.json").read_text()) | {
        "predict": {"model": "lstm:1", "version": "1", "predicted_return": 0.001, "direction": "long",
                    "as_of": "2024-09-06T03:00:00+00:00", "candles_used": 500},
        "ballots": [
            {"voter": "openai", "configured": False, "reason": "no credentials configured for openai"},
            {"kind": "vote", "voter": "anthropic", "model": "claude", "vote": "LONG", "confidence": 80.0,
             "rationale": "trend", "configured": True},
            # what the ASL's Abstain_* Pass state writes when a branch fails
            {"kind": "abstention", "voter": "llama", "model": "unknown", "configured": True,
             "reason": "internal_error", "detail": "RuntimeError"},
        ],
        "strategies": {"signals": {"bollinger": "long"}, "as_of": "2024-09-06T03:00:00+00:00",
                       "alert_strategy": {"name": "bollinger", "known": True, "win_rate": 0.6, "trades": 12,
                                          "total_return": 0.1, "sharpe": 1.2, "max_drawdown": 0.05, "bars": 500}},
        "validation": {"action": "trade", "reason": None, "rules": [{"rule": "kill_switch", "verdict": "pass",
                                                                    "reason": "not engaged"}],
                       "ensemble": {"signal": None, "outcome": "no_quorum", "confidence": None, "agreeing": [],
                                    "counts": {"LONG": 1}, "voters_configured": 2},
                       "intent": {"direction": "long", "symbol": "BTCUSDT", "price": "56588.0",
                                  "stop_loss": "55456.24", "take_profit": "58851.52", "quantity": None,
                                  "leverage": 1}},
        "execution": {"status": "filled", "reason": None, "decision_id": "tv-1", "account_id": 1,
                      "exchange": "paper", "symbol": "BTC/USDT:USDT", "action": "long", "orders": [],
                      "position": None, "warnings": [], "added_later": 1},
        "notify": {"Error": "TransientError", "Cause": "{}"},
    }  # fmt: skip
    parsed = PipelineState.model_validate(state)
    assert parsed.dump()["execution"]["added_later"] == 1  # the order service's extra keys are kept
    assert [type(b).__name__ for b in parsed.ballots or []] == ["Unconfigured", "CastVote", "CastAbstention"]
    again = PipelineState.model_validate(parsed.dump())
    assert again == parsed
    RecordRequest.model_validate({"outcome": "traded", "state": state, "execution_name": "tv-1"})


def test_unknown_keys_and_tokens_are_refused() -> None:
    state = json.loads((ROOT / "events" / "pipeline_input.json").read_text())
    with pytest.raises(ValueError, match="token"):
        PipelineState.model_validate(state | {"alert": state["alert"] | {"token": "t" * 32}})
    with pytest.raises(ValueError, match="surprise"):
        PipelineState.model_validate(state | {"surprise": 1})


# ------------------------------------------------------------------ the state machine agrees


def _tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, st in states.items():
        if st["Type"] == "Task":
            yield name, st
        for branch in st.get("Branches", []):
            yield from _tasks(branch["States"])


def _asl() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ASL.read_text())
    return data


def test_result_paths_are_the_state_fields() -> None:
    states = _asl()["States"]
    paths = {st["ResultPath"] for st in states.values() if "ResultPath" in st}
    paths |= {c["ResultPath"] for st in states.values() for c in st.get("Catch", [])}
    assert paths == {f"$.{k}" for k in RESULT_KEYS}
    assert set(RESULT_KEYS) <= set(PipelineState.model_fields)


def test_every_task_retries_exactly_the_retryable_name_and_bounded_timeouts() -> None:
    tasks = dict(_tasks(_asl()["States"]))
    assert len(tasks) == 11  # Predict, three votes, Strategies, Validate, Execute, Notify, three records
    for name, st in tasks.items():
        retriers = st["Retry"]
        errors = [set(r["ErrorEquals"]) for r in retriers]
        assert errors == [{RETRYABLE_ERROR_NAME} | LAMBDA_ERRORS, TIMEOUTS], name
        assert all(1 <= r["MaxAttempts"] <= 5 and r["BackoffRate"] >= 1 for r in retriers), name
        assert 1 <= retriers[1]["MaxAttempts"] <= 3, name  # a timeout is retried, boundedly
        assert 0 < st["TimeoutSeconds"] <= 120, name
    text = ASL.read_text()
    assert "TransientStageError" not in text and "States.Timeout" in _asl()["Comment"]


def test_vote_parameters_are_a_vote_request() -> None:
    tasks = dict(_tasks(_asl()["States"]))
    for name in ("Vote_openai", "Vote_anthropic", "Vote_llama"):
        keys = {k.removesuffix(".$") for k in tasks[name]["Parameters"]}
        assert keys <= set(VoteRequest.model_fields) and "idempotency_key" in keys


def test_record_parameters_are_a_record_request() -> None:
    for name, st in _tasks(_asl()["States"]):
        if name.startswith("Record"):
            assert {k.removesuffix(".$") for k in st["Parameters"]} == set(RecordRequest.model_fields)
