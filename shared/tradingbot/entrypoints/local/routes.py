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

The server runs requests on threads, but Powertools' resolvers keep the request being resolved in a
class attribute (``BaseRouter.current_event``), shared by every resolver of the process: two
requests resolved at once would read each other's headers and bodies (an alert answered with
another's id, one operator served with another's token). So resolver calls are serialized here;
the alert itself (``POST /webhook/tradingview``) is answered without the resolver (the webhook
handler says why) and runs concurrently, which its group commit needs.
"""

from __future__ import annotations

import threading
from typing import Any

from tradingbot.entrypoints.local.http import Handler

OPERATOR_PREFIXES = ("/api/", "/dashboard")
TELEGRAM_PATH = "/telegram/webhook"
ALERT_PATH = "/webhook/tradingview"  # tradingbot.entrypoints.lambdas.webhook.ALERT_PATH
RESOLVER_LOCK = threading.Lock()  # one Powertools resolver call at a time in this process


def local_routes(webhook: Handler, *, operator: Handler | None = None, telegram: Handler | None = None) -> Handler:
    """One handler for ``make_server`` that dispatches by path (the defaults are the real handlers)."""
    from tradingbot.entrypoints.lambdas.operator_api import handler as operator_handler
    from tradingbot.entrypoints.lambdas.telegram_webhook import handler as telegram_handler

    to_operator: Handler = operator or operator_handler
    to_telegram: Handler = telegram or telegram_handler

    def route(event: dict[str, Any], context: Any) -> dict[str, Any]:
        path = str(event.get("path") or "")
        if path == ALERT_PATH and event.get("httpMethod") == "POST":
            return webhook(event, context)  # no resolver on this path: concurrent
        with RESOLVER_LOCK:
            if path == "/api" or path.startswith(OPERATOR_PREFIXES):
                return to_operator(event, context)
            if path == TELEGRAM_PATH:
                return to_telegram(event, context)
            return webhook(event, context)

    return route
