"""Each Lambda handler on its sample event from events/, through functions/<name>/handler.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tradingbot.pipeline.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def load_handler(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"functions_{name}", ROOT / "functions" / name / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_every_function_folder_has_a_handler() -> None:
    names = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "handler.py").exists())
    assert names == ["backtest", "execute", "migrate", "notify", "operator_api", "predict", "reconcile",
                     "record_outcome", "strategies", "sweeper", "telegram_webhook", "validate", "vote",
                     "webhook"]  # fmt: skip
    for name in names:
        assert callable(load_handler(name))


def test_predict_says_unavailable_without_a_model(runtime: Runtime) -> None:
    out = load_handler("predict")(event("pipeline_input.json"), None)
    assert out["model"] in ("unavailable",) or {"predicted_return", "direction"} <= set(out)


def test_vote_without_keys_is_not_a_vote(runtime: Runtime) -> None:
    out = load_handler("vote")(event("vote_input.json"), None)
    assert out == {"voter": "openai", "configured": False, "reason": "no credentials configured for openai"}


def test_strategies_reports_every_signal_and_the_alert_strategy(
    runtime: Runtime, account: tuple[int, str], live_btc: Any
) -> None:
    out = load_handler("strategies")(event("pipeline_input.json") | {"account_id": account[0]}, None)
    assert set(out["signals"]) == {"supertrend", "rsi_ema", "macd_stochastic", "ichimoku", "bollinger", "ema_crossover"}
    assert set(out["signals"].values()) <= {"long", "short", "none"}
    assert out["alert_strategy"]["known"] is True and 0 <= out["alert_strategy"]["win_rate"] <= 1


class _Telegram(BaseHTTPRequestHandler):
    """Answers like the Bot API's sendMessage (https://core.telegram.org/bots/api#sendmessage)."""

    received: list[dict[str, Any]] = []  # noqa: RUF012 - shared by the test on purpose

    def log_message(self, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = self.path == "/botTESTTOKEN/sendMessage"
        _Telegram.received.append({"path": self.path, **body})
        message = {"message_id": len(_Telegram.received), "chat": {"id": body["chat_id"]}, "text": body["text"]}
        refused = {"ok": False, "error_code": 401, "description": "Unauthorized"}
        payload = {"ok": True, "result": message} if ok else refused
        status = 200 if ok else 401
        if self.path == "/botFLOODED/sendMessage":  # flood control: 429 with parameters.retry_after
            # https://core.telegram.org/bots/api#responseparameters (retry_after: seconds to wait)
            status, payload = 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 7},
                                    "description": "Too Many Requests: retry after 7"}  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def telegram(runtime: Runtime) -> Iterator[list[dict[str, Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Telegram)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Telegram.received = []
    runtime.settings = runtime.settings.model_copy(update={
        "telegram_bot_token": SecretStr("TESTTOKEN"), "telegram_chat_id": "42",
        "telegram_api_url": f"http://127.0.0.1:{server.server_address[1]}",
    })  # fmt: skip
    yield _Telegram.received
    server.shutdown()


def test_notify_sends_the_trade_and_alarms_to_telegram(telegram: list[dict[str, Any]]) -> None:
    state = event("pipeline_input.json")
    # the Execute stage's report, as the contract has it (tradingbot.pipeline.contracts.ExecutionResult)
    state["execution"] = {"status": "filled", "decision_id": state["idempotency_key"], "account_id": 1,
                          "symbol": "BTC/USDT:USDT", "action": "long"}  # fmt: skip
    out = load_handler("notify")(state, None)
    assert out["channel"] == "telegram" and out["message_id"] == 1
    assert telegram[0]["chat_id"] == "42" and telegram[0]["text"] == "bollinger long BTCUSDT @ 56588.0: filled"
    alarm = load_handler("notify")(event("sns_alarm.json"), None)
    assert alarm["sent"] == 1
    assert telegram[1]["text"].startswith("ALARM: tradingbot-failed-executions: Threshold Crossed")


def test_notify_refusal_is_a_stage_error(telegram: list[dict[str, Any]], runtime: Runtime) -> None:
    from tradingbot.pipeline.common import StageError

    runtime.settings = runtime.settings.model_copy(update={"telegram_bot_token": SecretStr("WRONG")})
    with pytest.raises(StageError, match="telegram refused the message: Unauthorized"):
        load_handler("notify")(event("pipeline_input.json"), None)


def test_backtest_worker_walks_a_grid_forward() -> None:
    """The worker optimises each fold in sample over the grid (issue 18) and recommends one of its points."""
    grid = {"fast": [5, 10], "slow": [50, 100]}
    out = load_handler("backtest")({"strategy": "ema_crossover", "grid": grid, "top": 2}, None)
    result = out["results"]["ema_crossover"]
    points = [{"fast": f, "slow": s} for f in grid["fast"] for s in grid["slow"]]
    assert result["combinations"] == 4 and result["recommended"] in points
    assert result["folds"] and all(fold["params"] in points for fold in result["folds"] if fold["status"] == "ok")
    assert result["summary"]["out_of_sample_trades"] > 0


@pytest.mark.parametrize("module", ["webhook", "predict", "vote", "validate", "execute", "notify", "record_outcome"])
def test_zip_lambdas_do_not_load_pandas_or_numba(module: str) -> None:
    # the webhook and the other zip Lambdas ship without the heavy stack: their import graphs stay free of it
    code = (f"import sys; import tradingbot.entrypoints.lambdas.{module}; "
            "heavy = [m for m in ('pandas', 'numba', 'pandas_ta') if m in sys.modules]; print(heavy)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_order_and_signal_events_are_logged_for_the_metric_filters(
    runtime: Runtime, account: tuple[int, str], caplog: pytest.LogCaptureFixture, live_btc: Any
) -> None:
    from tradingbot.pipeline.contracts import PipelineState
    from tradingbot.pipeline.strategies import strategies_stage

    state = event("pipeline_input.json") | {"account_id": account[0], "ballots": [],
                                            "predict": {"model": "unavailable", "reason": "off"}}  # fmt: skip
    state["alert"] = dict(state["alert"], strategy="macd_stochastic")
    state["strategies"] = strategies_stage(runtime, PipelineState.model_validate(state)).to_json()
    out = load_handler("validate")(state, None)
    assert out["action"] == "reject"
    # Powertools puts `extra` keys on the record; its JSON formatter prints them as top-level fields,
    # which is what the CloudWatch metric filters match ($.event = "...")
    events = [(getattr(r, "event", None), getattr(r, "reason", "")) for r in caplog.records]
    assert any(e == "trade_rejected" and "backtest_win_rate" in str(reason) for e, reason in events), events


def test_notify_flood_control_is_retryable_with_telegrams_retry_after(
    telegram: list[dict[str, Any]], runtime: Runtime
) -> None:
    from tradingbot.adapters.notify import TelegramBot, TelegramRateLimited
    from tradingbot.errors import RETRYABLE_ERROR_NAME

    runtime.settings = runtime.settings.model_copy(update={"telegram_bot_token": SecretStr("FLOODED")})
    with pytest.raises(Exception) as raised:
        load_handler("notify")(event("pipeline_input.json"), None)
    assert type(raised.value).__name__ == RETRYABLE_ERROR_NAME  # the state machine retries it
    api = runtime.settings.telegram_api_url
    with pytest.raises(TelegramRateLimited) as limited:
        TelegramBot(api_url=api, token="FLOODED").send_message("42", "hi")
    assert limited.value.retry_after_s == 7.0
