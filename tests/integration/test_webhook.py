"""The webhook handler: on the events/ fixture, over real HTTP on loopback, and fuzzed."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.integration.test_pipeline import alert_body
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, IngressRefusal, IngressRefusalSample
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.runner import LocalStepFunctions

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event_with(body: bytes | str | None, ip: str = "52.89.214.238") -> dict[str, Any]:
    event = json.loads((EVENTS / "webhook_tradingview.json").read_text())
    event["body"] = body
    if isinstance(body, bytes):
        try:
            event["body"] = body.decode()
        except UnicodeDecodeError:  # API Gateway base64-encodes what is not text
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    event["requestContext"]["identity"]["sourceIp"] = ip
    return event


def executions(local: LocalStepFunctions) -> int:
    return len(local.sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"])


def stored(local: LocalStepFunctions) -> list[Alert]:
    with session_scope(local.runtime.engine()) as s:
        rows = list(s.scalars(select(Alert).order_by(Alert.id)).all())
        s.expunge_all()
    return rows


def test_sample_event_is_accepted_and_redelivery_starts_nothing(
    local: LocalStepFunctions, account: tuple[int, str]
) -> None:
    sample = json.loads(json.loads((EVENTS / "webhook_tradingview.json").read_text())["body"])
    sample["token"] = account[1]
    sample["time"] = dt.datetime.now(dt.UTC).isoformat()
    body = json.dumps(sample)
    first = webhook_handler(event_with(body), None)
    again = webhook_handler(event_with(body), None)
    assert first["statusCode"] == again["statusCode"] == 202
    a, b = json.loads(first["body"]), json.loads(again["body"])
    assert a["execution_id"] == b["execution_id"] and b["duplicate"] is True
    assert executions(local) == 1
    rows = stored(local)
    assert len(rows) == 1 and rows[0].status in ("accepted", "processed", "rejected")
    assert account[1] not in rows[0].raw_body and '"token":"***"' in rows[0].raw_body
    assert str(rows[0].source_ip) == "52.89.214.238"


def refusals(local: LocalStepFunctions) -> tuple[list[IngressRefusal], list[IngressRefusalSample]]:
    """The stored tallies (after copying Redis's running counts in) and the kept samples."""
    from tradingbot.pipeline.ingress import flush_refusals

    flush_refusals(local.runtime)
    with session_scope(local.runtime.engine()) as s:
        tallies = list(s.scalars(select(IngressRefusal).order_by(IngressRefusal.id)).all())
        samples = list(s.scalars(select(IngressRefusalSample).order_by(IngressRefusalSample.id)).all())
        s.expunge_all()
    return tallies, samples


# refused after the token was verified: the account's owner finds these as alert rows
AUTHENTICATED_REFUSALS = {"unknown_symbol", "stale_alert", "unsupported_interval"}

BAD = [
    (b"{not json", 400, "malformed_json", "not valid JSON"),
    (None, 400, "empty_body", "empty"),
    (b"[1, 2]", 400, "malformed_json", "JSON object"),
    ({"price": "abc"}, 422, "invalid_field", "price"),
    ({"action": "moon"}, 422, "invalid_field", "action"),
    ({"symbol": "DOGEUSDT"}, 422, "unknown_symbol", "symbol: DOGEUSDT"),
    ({"token": None}, 422, "invalid_field", "token"),
    ({"token": "x" * 40}, 401, "bad_token", "token"),
    ({"time": "2020-01-01T00:00:00Z"}, 422, "stale_alert", "time"),
    ({"time": "2024-09-06T03:00:00"}, 422, "invalid_field", "timezone"),
    ({"leverage": 500}, 422, "invalid_field", "leverage"),
    ({"extra_field": 1}, 422, "invalid_field", "extra_field"),
    ({"comment": "x" * 9000}, 413, "body_too_large", "limit is 8192"),
]


@pytest.mark.parametrize(("change", "status", "code", "names"), BAD)
def test_bad_input_is_refused_named_and_stored_without_an_execution(
    local: LocalStepFunctions, account: tuple[int, str], change: Any, status: int, code: str, names: str
) -> None:
    if isinstance(change, dict):
        body = json.loads(alert_body(account[1]))
        body.update(change)
        raw: bytes | None = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    else:
        raw = change
    resp = webhook_handler(event_with(raw), None)
    assert resp["statusCode"] == status, resp["body"]
    err = json.loads(resp["body"])
    assert err["error"] == code and names in err["message"]
    assert executions(local) == 0
    rows = stored(local)
    tallies, samples = refusals(local)
    if code in AUTHENTICATED_REFUSALS:
        assert len(rows) == 1 and rows[0].status == "rejected" and rows[0].reason.startswith(code)
        assert account[1] not in (rows[0].raw_body or "")
        assert tallies == [] and samples == []
        return
    # refused before (or at) authentication: nothing in alerts, one tally and one bounded sample
    assert rows == []
    assert [(t.reason, t.source, t.count) for t in tallies] == [(code, "52.89.214.238", 1)]
    assert len(samples) == 1 and samples[0].reason == code and names in samples[0].message
    assert len(samples[0].body) <= 1024 and samples[0].body_bytes == len(raw or b"")
    assert account[1] not in samples[0].body


def test_wrong_tokens_lock_the_source_out_until_the_lockout_ends(
    local: LocalStepFunctions, account: tuple[int, str]
) -> None:
    local.runtime.settings = local.runtime.settings.model_copy(update={"bad_token_lockout_s": 2})
    codes, retry_after = [], []
    for i in range(7):
        body = json.loads(alert_body(account[1]))
        body["token"] = f"wrong-token-{i:04d}-xxxxxxxx"
        resp = webhook_handler(event_with(json.dumps(body), ip="203.0.113.9"), None)
        codes.append(resp["statusCode"])
        multi = resp.get("multiValueHeaders") or {}
        retry_after.append((resp.get("headers") or {}).get("Retry-After") or (multi.get("Retry-After") or [None])[0])
    assert codes == [401] * 5 + [429] * 2
    assert retry_after[:5] == [None] * 5 and all(r is not None and 0 < int(r) <= 2 for r in retry_after[5:])
    # another source is not affected
    assert webhook_handler(event_with(json.dumps({"token": "z" * 20}), ip="198.51.100.1"), None)["statusCode"] == 422
    # a locked source is refused even with the right token (it is refused before its body is read) ...
    locked = webhook_handler(event_with(alert_body(account[1]), ip="203.0.113.9"), None)
    assert locked["statusCode"] == 429 and json.loads(locked["body"])["error"] == "too_many_bad_tokens"
    # ... until the lockout ends
    time.sleep(2.2)
    ok = webhook_handler(event_with(alert_body(account[1]), ip="203.0.113.9"), None)
    assert ok["statusCode"] == 202, ok["body"]
    tallies, _ = refusals(local)
    counted = {(t.reason, t.source): t.count for t in tallies}
    assert counted[("bad_token", "203.0.113.9")] == 5
    assert counted[("too_many_bad_tokens", "203.0.113.9")] == 3
    assert [r.status for r in stored(local)] != [] and all(r.account_id == account[0] for r in stored(local))


def test_tradingview_addresses_are_never_locked_out(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    # every TradingView user's alerts come from TradingView's four addresses: someone else's wrong
    # tokens through TradingView must not lock ours out (they are refused 401 and counted)
    for i in range(8):
        body = json.loads(alert_body(account[1]))
        body["token"] = f"wrong-token-{i:04d}-xxxxxxxx"
        assert webhook_handler(event_with(json.dumps(body), ip="34.212.75.30"), None)["statusCode"] == 401
    assert webhook_handler(event_with(alert_body(account[1]), ip="34.212.75.30"), None)["statusCode"] == 202


def test_health_and_openapi(local: LocalStepFunctions) -> None:
    health = webhook_handler(json.loads((EVENTS / "webhook_health.json").read_text()), None)
    assert health["statusCode"] == 200
    assert json.loads(health["body"]) == {"status": "up"}  # public: up or down, nothing more
    spec_event = json.loads((EVENTS / "webhook_health.json").read_text())
    spec_event.update(path="/docs", queryStringParameters={"format": "json"})
    spec = json.loads(webhook_handler(spec_event, None)["body"])
    schema = spec["paths"]["/webhook/tradingview"]["post"]
    assert "requestBody" in schema and {"202", "401", "413", "422"} <= set(schema["responses"])


@pytest.fixture
def http_url(local: LocalStepFunctions) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, webhook_handler)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"{url}/webhook/tradingview", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_end_to_end_over_http_alert_to_finished_execution(http_url: str, local: LocalStepFunctions,
                                                          account: tuple[int, str], live_btc: Any) -> None:  # fmt: skip
    status, body = post(http_url, alert_body(account[1], strategy="macd_stochastic"))
    assert status == 202
    desc = local.wait(local.execution_arn(body["execution_id"]))
    assert desc["status"] == "SUCCEEDED"
    rows = stored(local)
    assert rows[0].status == "rejected" and rows[0].reason.startswith("backtest_win_rate")
    assert str(rows[0].source_ip) == "127.0.0.1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.dictionaries(st.sampled_from(["token", "strategy", "symbol", "action", "price", "time", "quantity",
                                                 "leverage", "stop_loss", "take_profit", "comment", "junk"]),
                                json_values, min_size=1, max_size=4),
       raw=st.binary(max_size=64) | st.none())  # fmt: skip
def test_fuzz_never_5xx_and_never_an_execution_without_a_valid_authenticated_body(
    local: LocalStepFunctions, account: tuple[int, str], mutation: dict[str, Any], raw: bytes | None
) -> None:
    before = executions(local)
    for body in (raw, json.dumps(mutation).encode(), _mutated(account[1], mutation)):
        rows, tallied = _alert_rows(local), _tallied(local)
        resp = webhook_handler(event_with(body), None)
        assert resp["statusCode"] < 500, resp
        if resp["statusCode"] != 202:
            assert executions(local) == before
            # every refusal is kept: an alert row once authenticated, else exactly one more tally
            error = json.loads(resp["body"])["error"]
            if error in AUTHENTICATED_REFUSALS and _alert_rows(local) == rows + 1:
                continue
            assert _tallied(local) == tallied + 1 and _alert_rows(local) == rows, error
        else:
            before = executions(local)
            assert json.loads(resp["body"])["execution_id"].startswith("tv-")


def _alert_rows(local: LocalStepFunctions) -> int:
    with session_scope(local.runtime.engine()) as s:
        return int(s.scalar(select(func.count()).select_from(Alert)) or 0)


def _tallied(local: LocalStepFunctions) -> int:
    """Every refusal Redis counted in the last quarter hour."""
    now = int(time.time()) // 60
    tallies = local.runtime.cache().refusal_tallies(range(now - 15, now + 1))
    return sum(sum(fields.values()) for fields in tallies.values())


def _mutated(token: str, mutation: dict[str, Any]) -> bytes:
    body = json.loads(alert_body(token))
    body = copy.deepcopy(body) | mutation
    return json.dumps(body).encode()


def test_a_failing_dependency_is_a_retryable_503_not_a_crash(
    local: LocalStepFunctions, account: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradingbot.adapters.persistence import repositories as repository

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("QueuePool limit reached")

    monkeypatch.setattr(repository, "record_alerts", broken)
    resp = webhook_handler(event_with(alert_body(account[1])), None)
    assert resp["statusCode"] == 503
    assert json.loads(resp["body"]) == {"error": "unavailable", "message": "temporarily unavailable; retry"}
    assert executions(local) == 0
