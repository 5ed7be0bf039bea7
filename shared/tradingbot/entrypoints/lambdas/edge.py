"""The Lambda edge: Powertools (Logger, Tracer, Metrics) and the error contract, in one place.

Every Lambda handler of the product is wrapped by :func:`lambda_edge` (the webhook by
:func:`http_edge`), which applies, outermost first, as Powertools documents them
(https://docs.powertools.aws.dev/lambda/python/latest/core/logger/#setting-a-correlation-id,
.../core/tracer/#lambda-handler, .../core/metrics/#adding-metrics):

1. ``@logger.inject_lambda_context(correlation_id_path=...)``: the Lambda context and a correlation
   id on every log line (the state's ``idempotency_key``, which is the execution name of an alert's
   execution; the API Gateway request id for the webhook);
2. ``@tracer.capture_lambda_handler``: one X-Ray subsegment per invocation;
3. ``@metrics.log_metrics(capture_cold_start_metric=True)``: CloudWatch EMF, flushed after each call, with
   one ``<Function>Succeeded|Retryable|Failed`` count (``Http2xx|4xx|5xx`` for the webhook);
4. :func:`retryable`: any :class:`~tradingbot.errors.TransientError` leaves the function as an
   exception whose class name is :data:`~tradingbot.errors.RETRYABLE_ERROR_NAME`. Lambda reports an
   unhandled exception's class name as ``errorType`` and Step Functions matches that name in a
   Retry's ``ErrorEquals``, so the ASL retries exactly one name for every dependency blip.

Locally (tests, ``tradingbot serve``: no X-Ray daemon, no EMF agent) tracing and metrics are off
unless ``POWERTOOLS_TRACE_DISABLED`` / ``POWERTOOLS_METRICS_DISABLED`` say otherwise (read, never
written), and a handler called with ``context=None`` gets a local
stand-in context, so the same decorated handler runs on AWS and in-process.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from pydantic import BaseModel, ValidationError

from tradingbot.errors import RETRYABLE_ERROR_NAME, TransientError
from tradingbot.pipeline.common import StageError

#: Not on Lambda (tests, ``tradingbot serve``): nothing listens for traces or EMF, so both are off
#: unless ``POWERTOOLS_TRACE_DISABLED`` / ``POWERTOOLS_METRICS_DISABLED`` say "false" explicitly.
#: Read here and passed to Powertools; the environment is never written.
ON_LAMBDA = "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def _disabled(variable: str) -> bool:
    value = os.environ.get(variable)
    return not ON_LAMBDA if value is None else value.strip().lower() in {"1", "true"}


SERVICE = "tradingbot"  # POWERTOOLS_SERVICE_NAME on AWS (cdk/tradingbot_infra/lambdas.py)
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "TradingBot"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE, disabled=_disabled("POWERTOOLS_TRACE_DISABLED"))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

#: Errors that mean "a dependency was briefly unavailable": the whole transient branch of the tree
#: (``DatabaseUnavailable``, ``CacheUnavailable``, ``ExchangeUnavailable``, ``RateLimited`` ...).
TRANSIENT: tuple[type[BaseException], ...] = (TransientError,)

#: The one exception class the state machine retries (its ``__name__`` is what Lambda reports).
Retryable: type[TransientError] = type(
    RETRYABLE_ERROR_NAME, (TransientError,), {"__module__": __name__, "__doc__": "A retryable stage failure."}
)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class LocalContext:
    """What Powertools reads from a Lambda context, for in-process calls (local runner, tests)."""

    function_name: str
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def retryable(fn: Handler) -> Handler:
    """Report every transient failure under :data:`RETRYABLE_ERROR_NAME`; the original stays the cause."""

    @functools.wraps(fn)
    def wrapper(event: dict[str, Any], context: Any) -> Any:
        try:
            return fn(event, context)
        except TRANSIENT as exc:
            if type(exc).__name__ == RETRYABLE_ERROR_NAME:
                raise
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def parse[M: BaseModel](model: type[M], event: Any) -> M:
    """Validate a handler's input; a malformed one is permanent (retrying the same input cannot help)."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        raise StageError(f"invalid {model.__name__}: {where}: {first['msg']} ({exc.error_count()} error(s))") from None


def _count(name: str) -> Callable[[Handler], Handler]:
    """One EMF count per outcome (``<name>Succeeded`` / ``<name>Retryable`` / ``<name>Failed``), so a
    retried blip is visible in CloudWatch even when the retry then succeeds."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def wrapper(event: dict[str, Any], context: Any) -> Any:
            outcome = "Failed"
            try:
                result = fn(event, context)
                outcome = "Succeeded"
                return result
            except TransientError:
                outcome = "Retryable"
                raise
            finally:
                metrics.add_metric(name=f"{name}{outcome}", unit=MetricUnit.Count, value=1)

        return wrapper

    return wrap


def add_count(name: str, value: float) -> None:
    """One EMF count from inside a handler (e.g. reconcile's drift); nothing when metrics are off
    (locally), where no :func:`lambda_edge` flushes them."""
    if _emf_enabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _with_context(function_name: str, fn: Handler) -> Handler:
    @functools.wraps(fn)
    def wrapper(event: dict[str, Any], context: Any = None) -> Any:
        return fn(event, context if context is not None else LocalContext(function_name=f"tradingbot-{function_name}"))

    return wrapper


def _emf_enabled() -> bool:
    """Metrics off (locally, by default): the handler is not wrapped at all. Powertools keeps one metric
    set per process, and in-process handlers on several threads (the local runner's parallel branches
    beside the webhook) would flush each other's and warn about an empty set."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED") is None:
        return ON_LAMBDA
    return not is_metrics_disabled()


def emf_enabled() -> bool:
    """Whether handlers' metrics are flushed (on Lambda, or when POWERTOOLS_METRICS_DISABLED says so)."""
    return _emf_enabled()


def lambda_edge(function: str, *, correlation_id_path: str = "idempotency_key") -> Callable[[Handler], Handler]:
    """Decorate a state machine task (or any non-HTTP) handler; ``function`` is its functions/ folder name."""
    stage = "".join(part.capitalize() for part in function.split("_"))

    def wrap(fn: Handler) -> Handler:
        inner = retryable(fn)
        if _emf_enabled():
            inner = metrics.log_metrics(capture_cold_start_metric=True)(_count(stage)(inner))
        inner = tracer.capture_lambda_handler(inner)
        inner = logger.inject_lambda_context(correlation_id_path=correlation_id_path)(inner)
        return _with_context(function, inner)

    return wrap


def http_edge(function: str, *, correlation_id_path: str) -> Callable[[Handler], Handler]:
    """Decorate an API Gateway handler: Powertools as above and one count per status class (``Http2xx``,
    ``Http4xx``, ``Http5xx``); no error translation (it answers HTTP)."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def counted(event: dict[str, Any], context: Any) -> Any:
            response = fn(event, context)
            status = int(response.get("statusCode", 500)) if isinstance(response, dict) else 500
            metrics.add_metric(name=f"Http{status // 100}xx", unit=MetricUnit.Count, value=1)
            return response

        inner = metrics.log_metrics(capture_cold_start_metric=True)(counted) if _emf_enabled() else fn
        inner = tracer.capture_lambda_handler(inner)
        inner = logger.inject_lambda_context(correlation_id_path=correlation_id_path)(inner)
        return _with_context(function, inner)

    return wrap
