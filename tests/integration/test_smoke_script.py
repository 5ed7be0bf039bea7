"""scripts/smoke_test.py (the main workflow's post-deploy check) against the real local webhook."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.runner import LocalStepFunctions

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_test.py"


@pytest.fixture(scope="module")
def smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["smoke_test"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def url(local: LocalStepFunctions) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, webhook_handler)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_check_passes_against_a_working_webhook(
    smoke: ModuleType,
    url: str,
    account: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMOKE_TOKEN", account[1])
    assert smoke.main(["--url", url, "--token-env", "SMOKE_TOKEN", "--price", "64000"]) == 0
    out = capsys.readouterr().out
    assert out.count("[ok]") == 4 and account[1] not in out


def test_a_broken_deploy_fails_it(smoke: ModuleType, url: str, account: tuple[int, str]) -> None:
    checks = {name: passed for name, passed, _ in smoke.run(url=url, token="y" * 32, symbol="BTCUSDT", price=64000)}
    assert checks["alert accepted"] is False and checks["wrong token refused"] is True
    assert smoke.main(["--url", url, "--token-env", "UNSET_SMOKE_TOKEN_VAR"]) == 2
