"""Lambda handlers: thin adapters from events to the pipeline's domain functions.

``functions/<stage>/handler.py`` re-exports these, so AWS, the local server and the tests run the
same code. Powertools Logger/Tracer/Metrics stay here at the edge; the domain never imports them.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from tradingbot.domain.alert import TradingViewAlert
from tradingbot.pipeline import stages
from tradingbot.pipeline.runtime import get_runtime
from tradingbot.pipeline.webhook import WebhookResult, receive_alert

logger = Logger(service="tradingbot")

app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(path="/docs", title="TradingBot AI webhook", version="1.0.0")


class Accepted(BaseModel):
    execution_id: str
    duplicate: bool = False


class ErrorBody(BaseModel):
    error: str
    message: str


def _respond(result: WebhookResult) -> Response[str]:
    if result.status == 202 and not result.body.get("duplicate"):
        # counted by the "signals" metric filter on the webhook's log group (cdk monitoring stack)
        logger.info("signal accepted", extra={"event": "signal_accepted", "execution_id": result.body["execution_id"]})
    elif result.status >= 400:
        logger.info("alert refused", extra={"event": "alert_refused", "error": result.body.get("error")})
    return Response(status_code=result.status, content_type="application/json", body=json.dumps(result.body))


def _source_ip() -> str | None:
    ctx = app.current_event.request_context
    return ctx.identity.source_ip if ctx and ctx.identity else None


def _raw_body() -> bytes:
    return _event_body(app.current_event.raw_event)


def _event_body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8", errors="surrogateescape") if isinstance(body, str) else bytes(body)


@app.post(
    "/webhook/tradingview",
    summary="Receive a TradingView alert",
    description="The body carries the account's token (TradingView cannot set headers). Answers 202 with "
    "the execution id; the same alert delivered again returns the same id and starts nothing.",
    responses={
        202: {"description": "accepted", "content": {"application/json": {"model": Accepted}}},
        400: {"description": "malformed body", "content": {"application/json": {"model": ErrorBody}}},
        401: {"description": "unknown token", "content": {"application/json": {"model": ErrorBody}}},
        413: {"description": "body over 8 KB", "content": {"application/json": {"model": ErrorBody}}},
        422: {"description": "invalid field, stale alert, unknown symbol",
              "content": {"application/json": {"model": ErrorBody}}},
        429: {"description": "too many wrong tokens", "content": {"application/json": {"model": ErrorBody}}},
    },
)  # fmt: skip
def tradingview(alert: Annotated[TradingViewAlert, Body()]) -> Response[str]:
    # the typed parameter documents the schema; receive_alert re-reads the raw body so the
    # accepted and the refused paths share one code path (and one stored record per attempt)
    return _respond(receive_alert(get_runtime(), _raw_body(), _source_ip()))


@app.exception_handler(RequestValidationError)
def invalid_request(_: RequestValidationError) -> Response[str]:
    return _respond(receive_alert(get_runtime(), _raw_body(), _source_ip()))


@app.get("/health", summary="Liveness and dependency check")
def health() -> dict[str, Any]:
    rt = get_runtime()
    checks: dict[str, str] = {}
    try:
        with rt.engine().connect() as conn:
            conn.exec_driver_sql("select 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        checks["redis"] = "ok" if rt.cache().ping() else "unavailable"
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    return {"status": "ok" if all(v == "ok" for v in checks.values()) else "degraded", "checks": checks}


def webhook_handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    raw = _event_body(event)
    limit = get_runtime().settings.webhook_max_body_bytes
    is_webhook = str(event.get("path", "")).startswith("/webhook")
    if is_webhook and (len(raw) > limit or _not_utf8(raw)):
        # refused before the resolver: an oversized or binary body gets the same named 4xx and
        # stored record as any other bad body, at no parsing cost
        ip = (event.get("requestContext") or {}).get("identity", {}).get("sourceIp")
        result = receive_alert(get_runtime(), raw, ip)
        return {"statusCode": result.status, "headers": {"Content-Type": "application/json"},
                "body": json.dumps(result.body)}  # fmt: skip
    try:
        return app.resolve(event, context)  # type: ignore[arg-type]
    except Exception:
        # a dependency failed (database pool exhausted or unreachable, Redis ...): the sender gets a
        # retryable 503 with a reason, never an unhandled error; redeliveries are de-duplicated
        logger.exception("webhook failed", extra={"event": "webhook_error"})
        return {"statusCode": 503, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"error": "unavailable", "message": "temporarily unavailable; retry"})}  # fmt: skip


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# ------------------------------------------------------------------ state machine tasks


def predict_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return stages.predict_stage(get_runtime(), event)


def vote_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return stages.vote_stage(get_runtime(), event)


def strategies_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return stages.strategies_stage(get_runtime(), event)


def validate_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    out = stages.validate_stage(get_runtime(), event)
    # structured events: CloudWatch metric filters (cdk/tradingbot_infra/monitoring.py) count them
    if out["action"] == "trade":
        logger.info("trade approved", extra={"event": "trade_approved", "symbol": out["intent"]["symbol"]})
    else:
        logger.info("trade rejected", extra={"event": "trade_rejected", "reason": out["reason"]})
    return out


def execute_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    from tradingbot.pipeline.execute import execute_stage

    report = execute_stage(get_runtime(), event)
    status = report.get("status")
    if status in ("filled", "partially_filled"):
        logger.info("order placed", extra={"event": "order_placed", "status": status, "symbol": report.get("symbol")})
    elif status == "rejected":
        logger.warning("order rejected", extra={"event": "order_rejected", "reason": report.get("reason")})
    return report


def notify_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records")
    if records:  # a CloudWatch alarm through SNS
        return stages.notify_alarms(get_runtime(), records)
    return stages.notify_stage(get_runtime(), event)


def record_outcome_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return stages.record_outcome_stage(get_runtime(), event)


def backtest_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return stages.optimise(event)


# name used in the state machine (and for the functions/ folders) -> handler
HANDLERS = {
    "webhook": webhook_handler,
    "predict": predict_handler,
    "vote": vote_handler,
    "strategies": strategies_handler,
    "validate": validate_handler,
    "execute": execute_handler,
    "notify": notify_handler,
    "record_outcome": record_outcome_handler,
    "backtest": backtest_handler,
}
