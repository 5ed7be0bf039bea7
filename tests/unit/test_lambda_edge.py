"""The Lambda edge: transient errors leave under the one retryable name, bad input is permanent, and
Powertools runs without a Lambda context, an X-Ray daemon or an EMF agent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.persistence.errors import DatabaseUnavailable
from tradingbot.entrypoints.lambdas import edge
from tradingbot.errors import RETRYABLE_ERROR_NAME, DependencyUnavailable, PermanentError, RateLimited, TransientError
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import PipelineState


def _raising(exc: BaseException) -> Any:
    @edge.lambda_edge("predict")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise exc

    return handler


@pytest.mark.parametrize(
    "exc",
    [
        DatabaseUnavailable("cannot reach the database at postgresql+pg8000://app:***@db/x: refused"),
        CacheUnavailable("redis down"),
        DependencyUnavailable("venue down"),
        RateLimited("slow down", retry_after_s=1.0),
        TransientError("blip"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_transient_error_leaves_under_the_retryable_name(exc: BaseException) -> None:
    with pytest.raises(TransientError) as info:
        _raising(exc)({"idempotency_key": "tv-1"}, None)
    # Lambda reports the class name as errorType; the ASL retries exactly this name
    assert type(info.value).__name__ == RETRYABLE_ERROR_NAME
    assert info.value.__cause__ is exc or info.value is exc
    assert type(exc).__name__ in str(info.value) or info.value is exc


@pytest.mark.parametrize("exc", [StageError("no candles"), PermanentError("refused"), RuntimeError("bug")])
def test_other_errors_keep_their_name(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as info:
        _raising(exc)({}, None)
    assert info.value is exc and type(info.value).__name__ != RETRYABLE_ERROR_NAME


def test_malformed_input_is_a_permanent_stage_error() -> None:
    with pytest.raises(StageError, match=r"invalid PipelineState: alert: Field required"):
        edge.parse(PipelineState, {"account_id": 1, "idempotency_key": "tv-1"})


def test_a_handler_runs_without_a_context_and_logs_the_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    @edge.lambda_edge("validate")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(context)
        edge.logger.info("inside")
        return {"ok": True}

    assert handler({"idempotency_key": "tv-1-abc"}, None) == {"ok": True}
    assert seen[0].function_name == "tradingbot-validate" and seen[0].aws_request_id
    record = next(r for r in caplog.records if r.getMessage() == "inside")
    assert edge.logger.get_correlation_id() == "tv-1-abc"
    assert record.levelname == "INFO"


def test_tracing_is_off_locally() -> None:
    assert edge.tracer.disabled


def test_emf_metrics_when_enabled(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aws_lambda_powertools.metrics.provider import cold_start

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(cold_start, "is_cold_start", True)

    @edge.lambda_edge("notify")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {}

    capsys.readouterr()
    handler({"idempotency_key": "tv-1"}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    names = {m["Name"] for line in lines for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"ColdStart", "NotifySucceeded"} <= names
    assert all(d["Namespace"] == edge.NAMESPACE for line in lines for d in line["_aws"]["CloudWatchMetrics"])


def test_no_emf_output_locally(capsys: pytest.CaptureFixture[str]) -> None:
    @edge.lambda_edge("notify")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {}

    capsys.readouterr()
    handler({}, None)
    assert "_aws" not in capsys.readouterr().out
