from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tradingbot.domain.backtest import BacktestConfig, BacktestResult, run_strategy
from tradingbot.domain.backtest.report import to_json
from tradingbot.domain.candles import bundled_path, load_candles
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
    b = doc["breakdowns"]
    assert sum(g["trades"] for g in b["by_month"].values()) == len(doc["trades"])
    assert sum(g["trades"] for g in b["by_side"].values()) == len(doc["trades"]) and set(b["by_side"]) <= {
        "long",
        "short",
    }
    assert math.isclose(sum(g["pnl"] for g in b["by_exit_reason"].values()), sum(t["pnl"] for t in doc["trades"]))
    assert 1 <= b["max_consecutive_losses"] <= len(doc["trades"]) and list(b["by_hour"]) == sorted(b["by_hour"])
    page = report.read_text()
    assert 'id="by_weekday"' in page and "Max consecutive wins" in page
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
    doc = json.loads(out.read_text())
    rows = doc["candidates"]
    assert len(rows) == 6 and {r["fold"] for r in rows} == {None}  # no walk-forward: one window, every bar
    best = max(rows, key=lambda r: r["metrics"]["sharpe"])
    assert doc["recommended"] == best["params"]
    assert "6 combinations, best by sharpe" in res.stdout


def test_optimize_walk_forward_writes_the_report_and_refuses_bad_input(tmp_path: Path) -> None:
    report, out = tmp_path / "wf.html", tmp_path / "wf.json"
    res = runner.invoke(app, ["optimize", "--strategy", "ema_crossover", "--data", DATA, "--param", "fast=5,10,20",
                              "--param", "slow=30,50", "--walk-forward", "3", "--window", "anchored",
                              "--report", str(report), "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert len(doc["folds"]) == 3 and doc["walk_forward"]["window"] == "anchored"
    assert len(doc["candidates"]) == 4 * 6  # 3 folds + the latest window, 6 combinations each
    page = report.read_text()
    assert page.count("<script") >= 1 and "id='folds'" in page and "Stitched out-of-sample equity" in page
    assert "walk-forward efficiency" in page and "deflated Sharpe ratio" in page
    long_window = runner.invoke(app, ["optimize", "--strategy", "ema_crossover", "--data", DATA, "--walk-forward",
                                      "400", "--report", str(tmp_path / "no.html")])  # fmt: skip
    assert long_window.exit_code == 2 and "at least 30" in long_window.stderr
    assert not (tmp_path / "no.html").exists()
    empty = runner.invoke(app, ["optimize", "--strategy", "ema_crossover", "--data", DATA, "--param", "fast=50",
                                "--param", "slow=20"])  # fmt: skip
    assert empty.exit_code == 2 and "no valid combination" in empty.stderr
    no_evidence = runner.invoke(app, ["optimize", "--strategy", "ema_crossover", "--symbol", "BTCUSDT", "--promote"])
    assert no_evidence.exit_code == 2 and "--promote needs out-of-sample evidence" in no_evidence.stderr


def test_strategies_lists_parameters() -> None:
    res = runner.invoke(app, ["strategies"])
    assert res.exit_code == 0 and "ema_crossover" in res.output and "fast (int)" in res.output


def _reference_json(result: BacktestResult) -> str:
    """The --json writer as it was (a strftime per time, json's indent=1 encoder): the contract."""

    def iso(ts: pd.Timestamp) -> str:
        return str(ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))

    trades = [
        {"entry_time": iso(r.entry_time), "exit_time": iso(r.exit_time), "side": r.side,
         "entry_price": float(r.entry_price), "exit_price": float(r.exit_price), "quantity": float(r.quantity),
         "pnl": float(r.pnl), "fees": float(r.fees), "funding": float(r.funding), "exit_reason": r.exit_reason}
        for r in result.trades.itertuples(index=False)
    ]  # fmt: skip
    doc = {
        "strategy": result.strategy,
        "params": result.params,
        "config": asdict(result.config),
        "metrics": {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.metrics.items()},
        "breakdowns": _reference_breakdowns(result.trades),
        "trades": trades,
        "equity": [{"time": iso(t), "equity": float(v)} for t, v in result.equity.items()],
    }
    return json.dumps(doc, indent=1)


def _reference_breakdowns(t: pd.DataFrame) -> dict[str, Any]:
    """The breakdowns from pandas' own groupby and a run-length count (independent of the product's loop)."""
    exit_ = pd.DatetimeIndex(t["exit_time"]).tz_convert("UTC")
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

    def grp(keys: Any, order: Any = None) -> dict[str, Any]:
        frame = pd.DataFrame({"k": list(keys), "pnl": t["pnl"].to_numpy()})
        out = {}
        for k, g in sorted(frame.groupby("k"), key=lambda kv: order(kv[0]) if order else kv[0]):
            p = g["pnl"].tolist()
            n, w = len(p), int((g["pnl"] > 0).sum())
            out[str(k)] = {"trades": n, "wins": w, "win_rate": w / n, "pnl": math.fsum(p), "avg_pnl": math.fsum(p) / n}
        return out

    win = (t["pnl"] > 0).to_numpy()
    runs = [(bool(k), len(list(g))) for k, g in itertools.groupby(win)]
    return {
        "by_month": grp(exit_.strftime("%Y-%m")),
        "by_weekday": grp(exit_.day_name(), days.index),
        "by_hour": grp(exit_.strftime("%H")),
        "by_exit_reason": grp(t["exit_reason"].astype(str)),
        "by_side": grp(t["side"].astype(str)),
        "max_consecutive_wins": max([n for k, n in runs if k], default=0),
        "max_consecutive_losses": max([n for k, n in runs if not k], default=0),
    }


@pytest.mark.parametrize(
    ("strategy", "bars", "config"),
    [
        ("ema_crossover", None, BacktestConfig()),
        ("bollinger", 2000, BacktestConfig(stop_loss=0.01, take_profit=0.02, leverage=5.0, slippage_bps=2.0)),
        ("supertrend", 40, BacktestConfig()),  # no trade: empty list
    ],
)
def test_json_is_byte_for_byte_the_documented_format(
    tmp_path: Path, strategy: str, bars: int | None, config: BacktestConfig
) -> None:
    candles = load_candles(bundled_path())
    candles = candles.iloc[:bars] if bars else candles
    result = run_strategy(candles, strategy, None, config)
    assert to_json(result) == _reference_json(result)
    assert json.dumps(result.to_dict(), indent=1) == _reference_json(result)
    data = tmp_path / "c.csv"
    candles.to_csv(data, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%SZ")
    out = tmp_path / "r.json"
    args = ["backtest", "--strategy", strategy, "--data", str(data), "--json", str(out), "--leverage",
            str(config.leverage), "--stop-loss", str(config.stop_loss), "--take-profit", str(config.take_profit),
            "--slippage-bps", str(config.slippage_bps)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert out.read_text() == _reference_json(result)


def test_json_writes_non_finite_numbers_as_json_does() -> None:
    result = run_strategy(load_candles(bundled_path()).iloc[:500], "ema_crossover")
    result.equity.iloc[[3, 4, 5]] = [math.nan, math.inf, -math.inf]
    assert to_json(result) == _reference_json(result)


HEAVY = ("pandas", "numpy", "numba", "sqlalchemy", "ccxt", "boto3", "onnxruntime", "pandas_ta", "plotly",
         "pydantic_settings", "redis", "cryptography")  # fmt: skip


@pytest.mark.parametrize(
    "command",
    ["", "accounts", "keys", "servers", "executions", "model", "backtest", "optimize", "params", "strategies",
     "reconcile", "feed", "serve", "replay", "kill-switch"],
)  # fmt: skip
def test_help_imports_no_heavy_library(command: str) -> None:
    """`tradingbot --help` and every `tradingbot <command> --help` load none of the heavy libraries
    (each command imports what it needs when it runs), so help answers in well under 0.3 s."""
    code = (
        "import sys\n"
        "from tradingbot.entrypoints.cli import app\n"
        "try:\n"
        f"    app([*{command.split()!r}, '--help'], prog_name='tradingbot')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "Usage: tradingbot" in done.stdout
    assert done.stdout.splitlines()[-1] == "loaded:"


def test_accounts_cli_lists_the_exchanges_the_model_allows() -> None:
    from tradingbot.adapters.persistence.models import EXCHANGES as MODEL_EXCHANGES
    from tradingbot.entrypoints.cli.accounts import EXCHANGES

    assert EXCHANGES == MODEL_EXCHANGES
