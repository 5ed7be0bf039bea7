"""`tradingbot serve` (what `make run` starts) as a real process: it prints a working curl command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import Engine, select

from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Decision, Order


def test_serve_prints_a_sample_alert_that_ends_in_a_paper_order(servers: Servers, db: Engine, tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url, COLUMNS="400")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradingbot.entrypoints.cli", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "curl -s -X POST" in line:
                break
        printed = "".join(lines)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", printed)
        body = re.search(r"-d '(\{.*\})'", printed)
        assert url and body, printed
        assert f"{url.group(1)}/docs" in printed
        with urllib.request.urlopen(url.group(1) + "/docs", timeout=10) as resp:
            assert resp.status == 200 and b"swagger" in resp.read().lower()
        req = urllib.request.Request(url.group(1) + "/webhook/tradingview", data=body.group(1).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
            execution_id = json.loads(resp.read())["execution_id"]
        deadline = time.monotonic() + 60
        decision = None
        while time.monotonic() < deadline and (decision is None or "_execution" not in decision.stages):
            time.sleep(0.2)
            with session_scope(db) as s:
                decision = s.scalars(select(Decision).where(Decision.execution_name == execution_id)).one_or_none()
                s.expunge_all()
        action = json.loads(body.group(1))["action"]
        assert decision is not None and decision.final_action == action, decision and decision.rejection_reason
        assert decision.stages["_execution"]["status"] == "SUCCEEDED"
        with session_scope(db) as s:
            assert s.scalars(select(Order).where(Order.type == "market")).one().status == "filled"
        assert (tmp_path / "demo-webhook-token").stat().st_mode & 0o077 == 0  # the token file is private
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
