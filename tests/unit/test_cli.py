from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradingbot.domain.candles import bundled_path
from tradingbot.entrypoints.cli import app

runner = CliRunner()
DATA = str(bundled_path())


def test_backtest_json_contract_and_report(tmp_path: Path) -> None:
    out, report = tmp_path / "r.json", tmp_path / "r.html"
    res = runner.invoke(app, ["backtest", "--strategy", "ema_crossover", "--param", "fast=10", "--data", DATA,
                              "--fee", "0.0004", "--slippage-bps", "1", "--leverage", "2", "--size", "0.5",
                              "--json", str(out), "--report", str(report)])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["params"] == {"fast": 10, "slow": 26}
    assert doc["config"]["leverage"] == 2 and doc["config"]["size"] == 0.5
    for key in (
        "total_return",
        "max_drawdown",
        "sharpe",
        "win_rate",
        "trades",
        "cagr",
        "sortino",
        "calmar",
        "profit_factor",
        "expectancy",
        "exposure",
        "avg_holding_hours",
        "fees",
        "funding",
    ):
        assert key in doc["metrics"], key
    assert doc["metrics"]["trades"] == len(doc["trades"]) > 10
    first = doc["trades"][0]
    assert set(first) >= {
        "entry_time",
        "exit_time",
        "side",
        "entry_price",
        "exit_price",
        "quantity",
        "pnl",
        "fees",
    }
    assert first["entry_time"].endswith("Z") and first["entry_time"] < first["exit_time"]
    assert len(doc["equity"]) == 5980
    final = doc["equity"][-1]["equity"]
    assert final == pytest.approx(10_000 + sum(t["pnl"] for t in doc["trades"]))
    assert doc["metrics"]["total_return"] == pytest.approx(final / 10_000 - 1)
    html = report.read_text()
    assert html.startswith("<!doctype html>") and "plotly" in html and 'id="metrics"' in html
    assert "ema_crossover backtest" in html
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_backtest_all_prints_a_row_per_strategy() -> None:
    res = runner.invoke(app, ["backtest", "--all", "--data", DATA])
    assert res.exit_code == 0, res.output
    for name in ("supertrend", "rsi_ema", "macd_stochastic", "ichimoku", "bollinger", "ema_crossover"):
        assert name in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "turtle"], "unknown strategy 'turtle'; valid: bollinger"),
        (["--strategy", "ema_crossover", "--param", "speed=3"], "valid: fast, slow"),
        (["--strategy", "ema_crossover", "--param", "fast"], "expected key=value"),
        (["--strategy", "ema_crossover", "--leverage", "500"], "leverage=500"),
        ([], "either --strategy NAME or --all"),
    ],
)
def test_bad_arguments_exit_non_zero_with_the_reason(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "o.json"
    res = runner.invoke(app, ["backtest", "--data", DATA, "--json", str(out), *args])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert not out.exists()


def test_bad_data_names_the_row_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00Z,1,2,0.5,1.5,1\n"
                   "2024-01-01T01:00Z,1.5,2,1,nan,1\n2024-01-01T02:00Z,1.5,2,1,1.2,1\n")  # fmt: skip
    out, report = tmp_path / "o.json", tmp_path / "o.html"
    res = runner.invoke(app, ["backtest", "--strategy", "bollinger", "--data", str(bad), "--json", str(out),
                              "--report", str(report)])  # fmt: skip
    assert res.exit_code == 2
    assert "row 2, column close" in " ".join(res.output.split())
    assert not out.exists() and not report.exists()


def test_optimize_runs_the_grid_and_ranks(tmp_path: Path) -> None:
    out = tmp_path / "grid.json"
    res = runner.invoke(app, ["optimize", "--strategy", "ema_crossover", "--data", DATA,
                              "--param", "fast=5,10,20", "--param", "slow=30,50",
                              "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert len(rows) == 6
    sharpe = [r["sharpe"] for r in rows]
    assert sharpe == sorted(sharpe, reverse=True)


def test_strategies_lists_parameters() -> None:
    res = runner.invoke(app, ["strategies"])
    assert res.exit_code == 0 and "ema_crossover" in res.output and "fast (int)" in res.output
