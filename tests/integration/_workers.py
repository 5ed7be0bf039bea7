"""Functions run in child processes by the concurrency and crash tests (importable under spawn)."""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal
from typing import Any

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, session_scope


def record_same_alerts(url: str, keys: list[str], barrier: Any, hold_s: float, results: Any) -> None:
    """For each key: wait for the sibling, insert, hold the transaction open a moment, commit."""
    engine = create_db_engine(url)
    created = []
    try:
        for key in keys:
            barrier.wait(timeout=30)
            with session_scope(engine) as session:
                rec = repo.record_alert(
                    session,
                    idempotency_key=key,
                    raw_body=f'{{"pid": {os.getpid()}}}',
                    source_ip="203.0.113.7",
                    account_id=None,
                )
                time.sleep(hold_s)  # widen the window: the sibling's insert meets an uncommitted row
            created.append(rec.created)
    finally:
        engine.dispose()
    results.put((os.getpid(), created))


def crash_mid_transaction(url: str, account_id: int, key: str, ready: Any) -> None:
    """Write alert + decision + order, then die by SIGKILL before committing."""
    engine = create_db_engine(url)
    with session_scope(engine) as session:
        alert = repo.record_alert(session, idempotency_key=key, raw_body="{}", source_ip=None, account_id=account_id)
        decision = repo.record_decision(
            session,
            execution_name=key,
            account_id=account_id,
            symbol="BTC/USDT:USDT",
            inputs={"signal": "long"},
            alert_id=alert.id,
        )
        repo.create_order(
            session,
            account_id=account_id,
            client_order_id=f"{key}-o",
            symbol="BTC/USDT:USDT",
            side="buy",
            quantity=Decimal("0.01"),
            decision_id=decision.id,
        )
        session.flush()
        ready.set()
        os.kill(os.getpid(), signal.SIGKILL)
