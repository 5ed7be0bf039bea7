"""Pine Script export, alert messages and the script checker (issue 19).

Every exported script is parsed by a real Pine Script parser (pynescript's v5 grammar); its inputs
are compared with the strategy's declared parameters; its alert messages, evaluated the way the
script builds them, are validated by the webhook's own parser.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pynescript.ast as past
import pytest
from typer.testing import CliRunner

from tradingbot.domain.alert import parse_alert
from tradingbot.domain.pine import PINE_VERSION, TOKEN_PLACEHOLDER, alert_message, export_script
from tradingbot.domain.pine.check import PineError, check_message, check_script, substitute
from tradingbot.domain.pine.templates import BODIES
from tradingbot.domain.strategies import REGISTRY, StrategyError
from tradingbot.entrypoints.cli import app

STRATEGIES = sorted(REGISTRY)
TOKEN = "t" * 32


def _parse(script: str) -> Any:
    return past.parse(script)  # raises pynescript's SyntaxError on anything it cannot read


def _inputs(script: str) -> dict[str, dict[str, Any]]:
    """p_<name> -> {defval, minval, maxval, step} read back from the parsed script."""
    found: dict[str, dict[str, Any]] = {}
    for stmt in _parse(script).body:
        if isinstance(stmt, past.Assign) and isinstance(stmt.target, past.Name) and stmt.target.id.startswith("p_"):
            call: Any = stmt.value
            values = {"defval": call.args[0].value.value}
            values |= {a.name: a.value.value for a in call.args if a.name in ("minval", "maxval", "step")}
            found[stmt.target.id.removeprefix("p_")] = values
    return found


def test_every_registered_strategy_has_a_pine_body() -> None:
    assert set(BODIES) == set(REGISTRY)


@pytest.mark.parametrize("name", STRATEGIES)
def test_export_parses_and_declares_every_parameter(name: str) -> None:
    script = export_script(strategy=name)
    assert script.startswith(f"//@version={PINE_VERSION}\n")
    inputs = _inputs(script)  # past.parse raises on any syntax error
    strategy = REGISTRY[name]
    assert set(inputs) == {p.name for p in strategy.params}
    for p in strategy.params:
        got = inputs[p.name]
        assert (got["defval"], got["minval"], got["maxval"], got["step"]) == pytest.approx(
            (p.default, p.low, p.high, p.step)
        ), p.name


@pytest.mark.parametrize("name", STRATEGIES)
def test_the_body_uses_every_parameter_and_only_declared_ones(name: str) -> None:
    used = set(re.findall(r"\bp_(\w+)", BODIES[name]))
    assert used == {p.name for p in REGISTRY[name].params}


@pytest.mark.parametrize("name", STRATEGIES)
def test_body_defines_the_four_signals(name: str) -> None:
    assigned = {
        s.target.id
        for s in _parse(export_script(strategy=name)).body
        if isinstance(s, past.Assign) and isinstance(s.target, past.Name)
    }
    assert {"longEntry", "longExit", "shortEntry", "shortExit"} <= assigned


def test_param_overrides_become_input_defaults_and_are_checked() -> None:
    inputs = _inputs(export_script(strategy="ema_crossover", params={"fast": "9", "slow": "30"}))
    assert inputs["fast"]["defval"] == 9 and inputs["slow"]["defval"] == 30
    with pytest.raises(StrategyError, match=r"fast .* must be smaller than slow"):
        export_script(strategy="ema_crossover", params={"fast": 40, "slow": 30})
    with pytest.raises(StrategyError, match="no parameter 'fsat'"):
        export_script(strategy="ema_crossover", params={"fsat": 9})
    with pytest.raises(ValueError, match="stop_loss_pct"):
        export_script(strategy="ema_crossover", stop_loss_pct=-1)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_exported_alert_message_is_a_body_the_webhook_accepts(name: str) -> None:
    report = check_script(export_script(strategy=name))
    assert report.ok, report.as_dict()
    actions = sorted(site.body["action"] for site in report.alerts if site.body)
    # two closes (strategy.close), two SL/TP exits (strategy.exit) and one entry each way
    assert actions == ["close", "close", "close", "close", "long", "short"]
    for site in report.alerts:
        assert site.body is not None and site.body["token"] == TOKEN_PLACEHOLDER
        alert = parse_alert(json.dumps({**site.body, "token": TOKEN}), 8192)
        assert alert.strategy == name and alert.symbol == "BTCUSDT" and alert.timeframe() == "1h"


def test_stop_and_target_percentages_become_prices_on_entries() -> None:
    report = check_script(export_script(strategy="bollinger", stop_loss_pct=2.0, take_profit_pct=5.0))
    entries = {s.body["action"]: s.body for s in report.alerts if s.body and s.body["action"] != "close"}
    close = Decimal("64000.5")  # the checker's sample close
    assert Decimal(str(entries["long"]["stop_loss"])) == pytest.approx(close * Decimal("0.98"))
    assert Decimal(str(entries["long"]["take_profit"])) == pytest.approx(close * Decimal("1.05"))
    assert Decimal(str(entries["short"]["stop_loss"])) == pytest.approx(close * Decimal("1.02"))
    assert Decimal(str(entries["short"]["take_profit"])) == pytest.approx(close * Decimal("0.95"))
    closes = [s.body for s in report.alerts if s.body and s.body["action"] == "close"]
    assert all("stop_loss" not in b for b in closes)


@pytest.mark.parametrize("position", ["long", "short", "flat"])
def test_alert_message_for_own_scripts_validates_after_substitution(position: str) -> None:
    message = alert_message(strategy="supertrend")
    text, unknown = substitute(message.replace("{{strategy.market_position}}", position))
    assert unknown == []
    alert = parse_alert(text.replace(TOKEN_PLACEHOLDER, TOKEN), 8192)
    assert alert.direction() == position and alert.strategy == "supertrend" and alert.interval == "60"
    with pytest.raises(StrategyError, match="unknown strategy"):
        alert_message(strategy="nope")


def test_check_names_what_to_fix() -> None:
    _, problems, _ = check_message(
        '{"token":"YOUR_WEBHOOK_TOKEN","strategy":"rsi ema","symbol":"{{ticker}}",'
        '"action":"{{strategy.order.side}}","price":{{close}},"time":"{{time}}"}'
    )
    assert any("{{strategy.order.side}} is not a TradingView placeholder" in p for p in problems)
    assert any(p.startswith("strategy:") for p in problems)
    assert any(p.startswith("action:") for p in problems)
    assert any("{{time}} is the bar's open time" in p for p in problems)
    _, problems, _ = check_message("BTC crossed {{close}}")
    assert len(problems) == 1 and "not JSON" in problems[0]


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty"), ('//@version=5\nstrategy("x"\nfoo = ', "line 3: syntax error"), ("\x00 ((", "syntax error")],
    ids=["empty", "syntax error", "garbage"],
)
def test_malformed_scripts_raise_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(PineError, match=match):
        check_script(text)


def test_a_script_without_version_or_alerts_is_reported() -> None:
    report = check_script('indicator("plain")\nplot(close)\n')
    assert not report.ok and report.kind == "indicator"
    assert any("no //@version" in p for p in report.problems)
    assert any("no alert() call" in p for p in report.problems)


def test_run_time_messages_are_reported_as_uncheckable() -> None:
    report = check_script('//@version=5\nindicator("x")\nr = ta.rsi(close, 14)\nalert("RSI " + str.tostring(r))\n')
    (site,) = report.alerts
    assert not site.ok and "ta.rsi" in site.problems[0]


def test_cli_export_check_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "s.pine"
    res = runner.invoke(app, ["pine", "export", "--strategy", "macd_stochastic", "--param", "k=10", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _inputs(out.read_text())["k"]["defval"] == 10
    assert runner.invoke(app, ["pine", "check", str(out)]).exit_code == 0
    bad = tmp_path / "bad.pine"
    bad.write_text("//@version=5\nindicator('x')\nalertcondition(close > open, 'up', 'BTC up')\n")
    res = runner.invoke(app, ["pine", "check", str(bad)])
    assert res.exit_code == 1 and "not JSON" in res.output
    bad.write_text("strategy(((")
    res = runner.invoke(app, ["pine", "check", str(bad)])
    assert res.exit_code == 2 and "syntax error" in res.output  # a named error, not a traceback (exit 1)
    res = runner.invoke(app, ["pine", "export", "--strategy", "ema_crossover", "--param", "fast"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output
    res = runner.invoke(app, ["pine", "alert-message", "--strategy", "ichimoku"])
    assert res.exit_code == 0 and '"strategy": "ichimoku"' in res.output
