"""The decision record and the alert tell what happened at the venue, not what was intended: the
whole state machine (moto's interpreter, the real handlers) on the live market stand-in, a paper
account whose venue refuses the order, and `tradingbot executions list` reading the result."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.integration.test_pipeline import alert_body, run_alert
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, Decision, Order, PaperPosition
from tradingbot.entrypoints.cli import app
from tradingbot.entrypoints.local.runner import LocalStepFunctions, store_trace
from tradingbot.pipeline.webhook import receive_alert

pytestmark = pytest.mark.usefixtures("live_btc")


def _states(local: LocalStepFunctions, name: str) -> list[str]:
    return [t["state"] for t in local.trace(local.execution_arn(name))]


def test_a_venue_rejection_is_recorded_as_rejected_with_the_venues_reason(
    local: LocalStepFunctions, account: tuple[int, str], servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id, token = account
    with session_scope(local.runtime.engine()) as s:
        # a paper wallet of 5 USDT and an alert for 0.01 BTC (566 USDT, within the account's 1,000 USDT
        # limit): the validator passes it, the paper venue refuses the margin, as Binance would
        # (-2019 "Margin is insufficient")
        repo.lock_paper_wallet(s, account_id, Decimal(5))
    result = receive_alert(local.runtime, alert_body(token, quantity=0.01), "127.0.0.1")
    assert result.status == 202, result.body
    name = result.body["execution_id"]
    desc = local.wait(local.execution_arn(name), timeout_s=180)  # a shared machine can be slow
    assert desc["status"] == "SUCCEEDED", desc
    with session_scope(local.runtime.engine()) as s:
        decision = s.scalars(select(Decision).where(Decision.execution_name == name)).one()
        s.expunge_all()
    assert "Execute" in _states(local, decision.execution_name)  # the trade path ran, then the venue said no
    report = decision.stages["execution"]
    assert report["status"] == "rejected" and report["reason"].startswith("open: insufficient_margin:"), report
    # the record: not "long", and the venue's reason, on the decision and on the alert
    assert decision.final_action == "rejected"
    assert decision.rejection_reason == f"execute: {report['reason']}"
    assert json.loads(desc["output"])["record"]["outcome"] == "rejected"
    with session_scope(local.runtime.engine()) as s:
        alert = s.get(Alert, decision.alert_id)
        assert alert is not None and (alert.status, alert.reason) == ("rejected", decision.rejection_reason)
        assert s.scalar(select(func.count()).select_from(PaperPosition).where(PaperPosition.quantity > 0)) == 0
        entry = s.scalars(select(Order).where(Order.type == "market")).one()
        assert entry.status == "rejected"  # the order row says so too, and nothing else was sent
        assert s.scalar(select(func.count()).select_from(Order)) == 1

    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("REDIS_URL", servers.redis_url)
    store_trace(local.runtime, decision.execution_name, desc, local.trace(local.execution_arn(decision.execution_name)))
    listed = CliRunner().invoke(app, ["executions", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if decision.execution_name[:12] in line)
    assert "order rejected" in row and "insufficient_margin" in row and " long " not in row, row


def test_an_order_with_nothing_to_do_is_a_hold_with_the_reason(
    local: LocalStepFunctions, account: tuple[int, str]
) -> None:
    # flat on a flat paper account: the order service has nothing to send
    desc, decision = run_alert(local, alert_body(account[1], action="flat"))
    assert desc["status"] == "SUCCEEDED", desc
    assert decision is not None
    assert decision.stages["execution"]["status"] == "no_op", decision.stages
    assert decision.final_action == "hold"
    assert decision.rejection_reason == f"execute: no order: {decision.stages['execution']['reason']}"
    with session_scope(local.runtime.engine()) as s:
        alert = s.get(Alert, decision.alert_id)
        assert alert is not None and alert.status == "processed"
        assert s.scalar(select(func.count()).select_from(Order)) == 0
