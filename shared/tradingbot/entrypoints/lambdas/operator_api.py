"""Lambda ``operator_api``: the operator API under ``/api`` and the dashboard page under ``/dashboard``.

A thin translation of HTTP to :mod:`tradingbot.pipeline.operator_api` (every rule lives there), on
Powertools' ``APIGatewayRestResolver`` with request validation and a generated OpenAPI document
(``GET /api/docs``, ``?format=json``). The refusals of the logic module are mapped to HTTP in one
place (:func:`refused`), following ran-isenberg/aws-lambda-handler-cookbook's pattern of domain
errors raised below and one exception handler at the edge.

Identity: on AWS API Gateway's Cognito user-pool authorizer verifies the JWT and passes its claims
in ``requestContext.authorizer.claims`` (the operator is the one whose ``cognito_sub`` is the
``sub`` claim); the local server (``tradingbot serve``) never sets that, so there the
``Authorization: Bearer tbop_...`` operator token is the identity.
"""

# No ``from __future__ import annotations``: Powertools reads the route parameters' Annotated types
# (Query, Body) at import, and string annotations of module-level aliases would not resolve.
import json
import threading
from importlib import resources
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field

from tradingbot.entrypoints.lambdas.edge import emf_enabled, http_edge, logger, metrics, tracer
from tradingbot.errors import TransientError
from tradingbot.pipeline import operator_api as cockpit
from tradingbot.pipeline.runtime import get_runtime

app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(
    path="/api/docs",
    title="TradingBot AI operator API",
    version="1.0.0",
    description="Accounts, positions, orders, fills, decisions, executions, PnL, equity, research runs and the "
    "kill switch of the accounts the caller owns. Lists are pages: pass `next_cursor` back as `cursor`.",
    security_schemes={"operatorToken": HTTPBearer(description="an operator token, or a Cognito ID token on AWS")},
    security=[{"operatorToken": []}],
)

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, le=cockpit.MAX_PAGE, description="rows per page (default 50)")]
STATIC = "dashboard"


def _count(name: str) -> None:
    """One EMF count, where metrics are flushed (on Lambda); locally nothing accumulates."""
    if emf_enabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


class ErrorBody(BaseModel):
    error: str
    message: str


class KillRequest(BaseModel):
    reason: str = Field(default="operator", min_length=1, max_length=200, description="stored, shown in rejections")


_ERROR_CONTENT = {"application/json": {"model": ErrorBody}}
ERRORS: dict[int, Any] = {
    401: {"description": "missing, unknown, expired or revoked token", "content": _ERROR_CONTENT},
    404: {"description": "no such account owned by the caller", "content": _ERROR_CONTENT},
    422: {"description": "invalid parameter (named)", "content": _ERROR_CONTENT},
    503: {"description": "a dependency is unavailable (retry)", "content": _ERROR_CONTENT},
}


def _operator() -> Any:
    event = app.current_event
    ctx = event.raw_event.get("requestContext") or {}
    claims = ((ctx.get("authorizer") or {}).get("claims")) or {}
    header = event.headers.get("Authorization") or event.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None
    route = f"{event.http_method} {event.path}"[:64]
    return cockpit.authenticate(get_runtime(), bearer=bearer, cognito_sub=claims.get("sub"), command=route)


@app.exception_handler(cockpit.OperatorApiError)
def refused(exc: cockpit.OperatorApiError) -> Response[str]:
    """Every refusal of the logic module, with its status and a message naming the field and why."""
    _count("OperatorApiRefused")
    logger.info("operator request refused", extra={"event": "operator_refused", "error": exc.code})
    return Response(status_code=exc.status, content_type="application/json",
                    body=json.dumps({"error": exc.code, "message": str(exc)}))  # fmt: skip


@app.exception_handler(TransientError)
def unavailable(exc: TransientError) -> Response[str]:
    logger.warning("operator request: dependency unavailable", extra={"event": "operator_unavailable"})
    return Response(status_code=503, content_type="application/json",
                    body=json.dumps({"error": "unavailable", "message": str(exc)}))  # fmt: skip


@app.get("/api/me", summary="Who the token belongs to", responses=ERRORS)
@tracer.capture_method
def me() -> dict[str, Any]:
    op = _operator()
    return {"operator": op.name, "accounts": [a["name"] for a in cockpit.accounts(get_runtime(), op)]}


@app.get("/api/accounts", summary="The caller's accounts with balance, limits and kill switch", responses=ERRORS)
@tracer.capture_method
def list_accounts() -> dict[str, Any]:
    return {"items": cockpit.accounts(get_runtime(), _operator())}


@app.get("/api/accounts/<account>/positions", summary="Open positions, live mark and unrealized PnL",
         responses=ERRORS)  # fmt: skip
@tracer.capture_method
def positions(account: str) -> dict[str, Any]:
    return cockpit.positions(get_runtime(), _operator(), account)


@app.post("/api/accounts/<account>/positions/<symbol>/close", summary="Close one position (reduce-only market)",
          responses=ERRORS)  # fmt: skip
@tracer.capture_method
def close(account: str, symbol: str) -> dict[str, Any]:
    return cockpit.close_position(get_runtime(), _operator(), account, symbol)


@app.get("/api/accounts/<account>/orders", summary="Orders, newest first (paged)", responses=ERRORS)
def orders(account: str, cursor: Cursor = None, limit: Limit = None) -> dict[str, Any]:
    return cockpit.orders(get_runtime(), _operator(), account, cursor=cursor, limit=limit)


@app.get("/api/accounts/<account>/fills", summary="Fills from the venue's records, newest first (paged)",
         responses=ERRORS)  # fmt: skip
def fills(account: str, cursor: Cursor = None, limit: Limit = None) -> dict[str, Any]:
    return cockpit.fills(get_runtime(), _operator(), account, cursor=cursor, limit=limit)


@app.get("/api/accounts/<account>/decisions", summary="Decisions with every rule's verdict (paged)",
         responses=ERRORS)  # fmt: skip
@tracer.capture_method
def decisions(
    account: str,
    cursor: Cursor = None,
    limit: Limit = None,
    today: Annotated[bool, Query(description="only today's (UTC)")] = False,
) -> dict[str, Any]:
    return cockpit.decisions(get_runtime(), _operator(), account, cursor=cursor, limit=limit, today=today)


@app.get("/api/accounts/<account>/executions", summary="Executions with per-state timings and results (paged)",
         responses=ERRORS)  # fmt: skip
def executions(account: str, cursor: Cursor = None, limit: Limit = None) -> dict[str, Any]:
    return cockpit.executions(get_runtime(), _operator(), account, cursor=cursor, limit=limit)


@app.get("/api/accounts/<account>/alerts", summary="TradingView alerts received for the account (paged)",
         responses=ERRORS)  # fmt: skip
def alerts(account: str, cursor: Cursor = None, limit: Limit = None) -> dict[str, Any]:
    return cockpit.alerts(get_runtime(), _operator(), account, cursor=cursor, limit=limit)


@app.get("/api/accounts/<account>/pnl/daily", summary="Realized PnL, fees and net per UTC day", responses=ERRORS)
def pnl_daily(account: str, days: Annotated[int, Query(ge=1, le=3650)] = 30) -> dict[str, Any]:
    return cockpit.pnl_daily(get_runtime(), _operator(), account, days=days)


@app.get("/api/accounts/<account>/equity", summary="Equity after each fill", responses=ERRORS)
def equity(account: str) -> dict[str, Any]:
    return cockpit.equity(get_runtime(), _operator(), account)


@app.get("/api/accounts/<account>/kill-switch", summary="The account's kill switch", responses=ERRORS)
def switch_state(account: str) -> dict[str, Any]:
    return cockpit.kill_switch(get_runtime(), _operator(), account, engage=None)


@app.post("/api/accounts/<account>/kill-switch", summary="Engage the kill switch: no new orders", responses=ERRORS)
@tracer.capture_method
def engage(account: str, body: Annotated[KillRequest | None, Body()] = None) -> dict[str, Any]:
    reason = body.reason if body is not None else "operator"
    return cockpit.kill_switch(get_runtime(), _operator(), account, engage=True, reason=reason)


@app.delete("/api/accounts/<account>/kill-switch", summary="Release the kill switch", responses=ERRORS)
@tracer.capture_method
def release(account: str) -> dict[str, Any]:
    return cockpit.kill_switch(get_runtime(), _operator(), account, engage=False)


@app.get("/api/performance", summary="Net realized PnL per symbol and per strategy", responses=ERRORS)
def performance() -> dict[str, Any]:
    return cockpit.performance(get_runtime(), _operator())


@app.get("/api/backtests", summary="Backtest runs, newest first (paged)", responses=ERRORS)
def backtests(cursor: Cursor = None, limit: Limit = None) -> dict[str, Any]:
    _operator()
    return cockpit.backtests(get_runtime(), cursor=cursor, limit=limit)


@app.get("/api/optimisations", summary="Optimisation runs, newest first (paged)", responses=ERRORS)
def optimisations(cursor: Cursor = None, limit: Limit = None) -> dict[str, Any]:
    _operator()
    return cockpit.optimisations(get_runtime(), cursor=cursor, limit=limit)


@app.get("/api/feed", summary="Market feed health: mode and each symbol's price age", responses=ERRORS)
def feed() -> dict[str, Any]:
    _operator()
    return cockpit.feed_health(get_runtime())


# ------------------------------------------------------------------ the dashboard page (static, no auth)

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}


def _static(name: str) -> Response[str]:
    folder = resources.files("tradingbot.entrypoints") / STATIC
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    target = folder / name
    if "/" in name or name.startswith(".") or suffix not in _TYPES or not target.is_file():
        return Response(status_code=404, content_type="application/json",
                        body=json.dumps({"error": "not_found", "message": f"no dashboard file {name!r}"}))  # fmt: skip
    # the page reads only the operator API (same origin) and, on AWS, redeems its sign-in code at the
    # operator pool's token endpoint; nothing else may run or be framed
    login = get_runtime().settings.operator_login_url.rstrip("/")
    connect = "'self'" + (f" {login}" if login else "")
    csp = f"default-src 'self'; script-src 'self'; style-src 'self'; connect-src {connect}; frame-ancestors 'none'"
    return Response(status_code=200, content_type=_TYPES[suffix], body=target.read_text(),
                    headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})  # fmt: skip


@app.get("/dashboard", include_in_schema=False)
def dashboard() -> Response[str]:
    return _static("index.html")


@app.get("/dashboard/config.json", include_in_schema=False)
def dashboard_config() -> dict[str, Any]:
    """How the page signs in: ``{"auth": "cognito", "login_url", "client_id"}`` on AWS (the operator
    user pool's managed login, authorization code + PKCE), ``{"auth": "token"}`` under ``serve``."""
    settings = get_runtime().settings
    if settings.operator_login_url and settings.operator_login_client_id:
        return {"auth": "cognito", "login_url": settings.operator_login_url.rstrip("/"),
                "client_id": settings.operator_login_client_id, "scope": "openid email"}  # fmt: skip
    return {"auth": "token"}


@app.get("/dashboard/<name>", include_in_schema=False)
def dashboard_file(name: str) -> Response[str]:
    return _static(name)


#: Powertools' resolver keeps the current request on ``app`` (``current_event``, ``context``): one
#: request at a time. Lambda runs one invocation per process anyway; `serve`'s threaded server does
#: not, and the dashboard's parallel reads raced there (KeyError '_route_args' in the validation
#: middleware, a failed refresh), so requests take turns.
_ONE_AT_A_TIME = threading.Lock()


@http_edge("operator_api", correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _ONE_AT_A_TIME:
        return app.resolve(event, context)
