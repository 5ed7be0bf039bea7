"""The local server's routes: which in-process Lambda handler answers which path, as API Gateway's
resources do on AWS (cdk/tradingbot_infra/api.py and operator_api.py):

==========================  =========================  ===========================================
path                        handler                    authentication
==========================  =========================  ===========================================
``/api/...``                operator_api               operator token (Cognito JWT on AWS)
``/dashboard[/...]``        operator_api               none: a static page that calls ``/api``
``/telegram/webhook``       telegram_webhook           ``X-Telegram-Bot-Api-Secret-Token``
everything else             webhook                    the alert's token (``/webhook/tradingview``,
                                                       ``/health``, ``/docs``)
==========================  =========================  ===========================================
"""

from __future__ import annotations

from typing import Any

from tradingbot.entrypoints.local.http import Handler

OPERATOR_PREFIXES = ("/api/", "/dashboard")
TELEGRAM_PATH = "/telegram/webhook"


def local_routes(webhook: Handler, *, operator: Handler | None = None, telegram: Handler | None = None) -> Handler:
    """One handler for ``make_server`` that dispatches by path (the defaults are the real handlers)."""
    from tradingbot.entrypoints.lambdas.operator_api import handler as operator_handler
    from tradingbot.entrypoints.lambdas.telegram_webhook import handler as telegram_handler

    to_operator: Handler = operator or operator_handler
    to_telegram: Handler = telegram or telegram_handler

    def route(event: dict[str, Any], context: Any) -> dict[str, Any]:
        path = str(event.get("path") or "")
        if path == "/api" or path.startswith(OPERATOR_PREFIXES):
            return to_operator(event, context)
        if path == TELEGRAM_PATH:
            return to_telegram(event, context)
        return webhook(event, context)

    return route
