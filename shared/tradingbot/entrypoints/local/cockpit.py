"""The operator's cockpit in ``tradingbot serve``: a demo operator who owns the demo account (its
API token kept in ``.data/demo-operator-token``, mode 0600, so the printed dashboard address keeps
working across restarts until the token expires), and Telegram long polling when asked for."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.pipeline.runtime import Runtime

DEMO_OPERATOR = "demo"
TOKEN_FILE = "demo-operator-token"


def demo_operator_token(rt: Runtime, data_dir: Path, account: str) -> str:
    """The demo operator's API token: created (with the operator, owning ``account``) on first
    run, reused while it is still valid, replaced when it expired or was revoked."""
    token_file = data_dir / TOKEN_FILE
    with session_scope(rt.engine()) as s:
        if token_file.exists():
            existing = token_file.read_text().strip()
            if ops.operator_by_token(s, existing).operator is not None:
                return existing
        try:
            op = ops.get_operator(s, DEMO_OPERATOR)
        except ops.UnknownOperator:
            op = ops.create_operator(s, name=DEMO_OPERATOR)
        acc = repo.find_account(s, account)
        if acc is not None:
            ops.assign_account(s, operator_id=op.id, account_id=acc.id)
        days = rt.settings.operator_token_ttl_days
        token = ops.issue_token(s, operator_id=op.id, ttl=dt.timedelta(days=days), label="serve demo")
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def start_telegram_polling(rt: Runtime) -> threading.Event | None:
    """Long polling (getUpdates) in a thread when TELEGRAM_POLLING=true and a bot token is set;
    the returned event stops it. None when not asked for."""
    if not (rt.settings.telegram_polling and rt.settings.telegram_token()):
        return None
    from tradingbot.pipeline.telegram_commands import TelegramPoller

    _, stop = TelegramPoller(rt).start()
    return stop
