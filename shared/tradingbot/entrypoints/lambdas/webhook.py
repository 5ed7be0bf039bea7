"""Lambda ``webhook``: ``POST /webhook/tradingview``, ``GET /health`` and ``GET /docs`` behind API Gateway.

It ships as a small zip Lambda: its import graph stays free of pandas and numba (a test holds it).
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel

from tradingbot.domain.alert import TradingViewAlert
from tradingbot.entrypoints.lambdas.edge import http_edge, logger
from tradingbot.pipeline import ingress
from tradingbot.pipeline.runtime import Runtime, get_runtime
from tradingbot.pipeline.webhook import WebhookResult, receive_alert

app = APIGatewayRestResolver(enable_validation=True)
ALERT_PATH = "/webhook/tradingview"
app.enable_swagger(path="/docs", title="TradingBot AI webhook", version="1.0.0")


class Accepted(BaseModel):
    execution_id: str
    duplicate: bool = False


class ErrorBody(BaseModel):
    error: str
    message: str


def _respond(result: WebhookResult) -> Response[str]:
    _log_outcome(result)
    return Response(
        status_code=result.status, content_type="application/json", body=json.dumps(result.body),
        headers=dict(result.headers) or None,
    )  # fmt: skip


def _log_outcome(result: WebhookResult) -> None:
    if result.status == 202 and not result.body.get("duplicate"):
        # counted by the "signals" metric filter on the webhook's log group (cdk monitoring stack)
        logger.info("signal accepted", extra={"event": "signal_accepted", "execution_id": result.body["execution_id"]})
    elif result.status >= 400:
        # debug only: a flood must not write a log line per request; refusals are counted in
        # ingress_refusals, and the first of each (minute, reason, source) is logged there
        logger.debug("alert refused", extra={"event": "alert_refused", "error": result.body.get("error")})


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
    ALERT_PATH,
    summary="Receive a TradingView alert",
    description="The body carries the account's token (TradingView cannot set headers). Answers 202 with "
    "the execution id; the same alert delivered again returns the same id and starts nothing.",
    responses={
        202: {"description": "accepted", "content": {"application/json": {"model": Accepted}}},
        400: {"description": "malformed body", "content": {"application/json": {"model": ErrorBody}}},
        401: {"description": "unknown token", "content": {"application/json": {"model": ErrorBody}}},
        403: {"description": "source IP not allowed, or (mutual TLS) not TradingView's client certificate",
              "content": {"application/json": {"model": ErrorBody}}},
        413: {"description": "body over 8 KB", "content": {"application/json": {"model": ErrorBody}}},
        422: {"description": "invalid field, stale alert, unknown symbol",
              "content": {"application/json": {"model": ErrorBody}}},
        429: {"description": "source locked out after wrong tokens, or the account's alerts per minute "
              "exceeded (Retry-After says when to retry)", "content": {"application/json": {"model": ErrorBody}}},
        503: {"description": "a dependency is unavailable; retry (TradingView resends after a 5xx)",
              "content": {"application/json": {"model": ErrorBody}}},
    },
)  # fmt: skip
def tradingview(alert: Annotated[TradingViewAlert, Body()]) -> Response[str]:
    # the typed parameter documents the schema; receive_alert re-reads the raw body so the
    # accepted and the refused paths share one code path (and one stored record per attempt)
    return _respond(receive_alert(get_runtime(), _raw_body(), _source_ip()))


@app.exception_handler(RequestValidationError)
def invalid_request(_: RequestValidationError) -> Response[str]:
    return _respond(receive_alert(get_runtime(), _raw_body(), _source_ip()))


class PublicHealth(BaseModel):
    status: str  # "up" or "down"


@app.get(
    "/health",
    summary="Up or down",
    description="Public: only `up` (200) or `down` (503), no dependency names or errors. With "
    "`Authorization: Bearer <operator token>` (or the token whose SHA-256 is HEALTH_TOKEN_SHA256): "
    "each dependency's check and the market the local runtime decides on.",
    responses={
        200: {"description": "up", "content": {"application/json": {"model": PublicHealth}}},
        503: {"description": "down", "content": {"application/json": {"model": PublicHealth}}},
    },
)  # fmt: skip
def health() -> Response[str]:
    rt = get_runtime()
    detail = _health_detail(rt)
    up = detail["status"] == "ok"
    authorization = app.current_event.headers.get("Authorization") or app.current_event.headers.get("authorization")
    body = detail if ingress.detailed_health_allowed(rt, authorization) else {"status": "up" if up else "down"}
    return Response(status_code=200 if up else 503, content_type="application/json", body=json.dumps(body))


def _health_detail(rt: Runtime) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        with rt.engine().connect() as conn:
            conn.exec_driver_sql("select 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    market: dict[str, Any] | None = None
    try:
        checks["redis"] = "ok" if rt.cache().ping() else "unavailable"
        # `tradingbot serve` says where its market comes from: the live feed or the offline replay
        market = rt.cache().market_mode() if checks["redis"] == "ok" else None
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    body: dict[str, Any] = {"status": "ok" if all(v == "ok" for v in checks.values()) else "degraded", "checks": checks}
    if market is not None:
        body["market"] = market
    return body


def _json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": json.dumps(body)}  # fmt: skip


@http_edge("webhook", correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raw = _event_body(event)
    is_webhook = str(event.get("path", "")).startswith("/webhook")
    refused = ingress.client_certificate_refusal(get_runtime(), event) if is_webhook else None
    if refused is not None:  # mutual TLS: a certificate the truststore accepts but that is not TradingView's
        return _json_response(refused.status, refused.body, refused.headers)
    try:
        if event.get("path") == ALERT_PATH and event.get("httpMethod") == "POST":
            # the alert itself never goes through the resolver: both its route and its validation
            # error handler answer receive_alert(raw body), which parses the body once, names the bad
            # field, and stores the attempt; the resolver keeps the request in a class attribute
            # (BaseRouter.current_event), shared by every thread of a threaded server, so the local
            # server (threads) must serialize it (tradingbot.entrypoints.local.routes) — the alert
            # path is the one that must not wait. The route stays for the OpenAPI document (/docs).
            ip = (event.get("requestContext") or {}).get("identity", {}).get("sourceIp")
            result = receive_alert(get_runtime(), raw, ip)
            _log_outcome(result)
            return _json_response(result.status, result.body, result.headers)
        return app.resolve(_read_as_json(event) if is_webhook else event, context)
    except Exception:
        # a dependency failed (database pool exhausted or unreachable, Redis ...): the sender gets a
        # retryable 503 with a reason, never an unhandled error; redeliveries are de-duplicated
        logger.exception("webhook failed", extra={"event": "webhook_error"})
        return _json_response(503, {"error": "unavailable", "message": "temporarily unavailable; retry"})


def _read_as_json(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its Content-Type read as JSON: TradingView sends ``text/plain`` whenever the
    message it was given is not JSON as typed (https://www.tradingview.com/support/solutions/43000529348),
    and Powertools' validation would answer 415 before the body is read. The body is parsed as JSON
    whatever the header says (domain.alert.parse_alert), so a non-JSON body still gets its named 400."""
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"}
    return {**event, "headers": {**headers, "Content-Type": "application/json"},
            "multiValueHeaders": {**multi, "Content-Type": ["application/json"]}}  # fmt: skip
