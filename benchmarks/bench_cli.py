"""The `tradingbot` command as whole processes, beside plain reference scripts in the same run.

Three figures, each the median of N fresh processes (subprocess, wall clock):

* ``tradingbot --help`` beside ``python -c "import backtesting"`` (no backtesting.py script can
  start sooner than its import). Target < 0.3 s.
* a one-year 1h backtest (8,760 bars: the bundled 5,980 BTC/USDT candles repeated with continued
  timestamps, tradingbot.domain.candles.extend_by_repetition) beside a plain backtesting.py
  script on the same file (EMA 12/26 crossover, FractionalBacktest, print the stats). One untimed
  run first loads the numba cache (compiled with cache=True), as a second process always finds it.
  Target < 0.8 s.
* what ``--json`` adds at 1,000,000 bars (a random-walk 1m candle file written as Parquet, so the
  setup takes seconds, not the minutes of a CSV): ``backtest --json`` minus ``backtest``, beside
  the same difference for pandas' own writer (``DataFrame.to_json(orient="records",
  date_format="iso", indent=1)`` of a time + equity frame, loading the same file). backtesting.py
  itself is not run at this size: its per-bar loop takes minutes. Target < 2 s.

    python benchmarks/bench_cli.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tradingbot.domain.candles import bundled_path, extend_by_repetition, load_candles

# the console script `tradingbot` runs exactly this
TRADINGBOT = [sys.executable, "-c", "from tradingbot.entrypoints.cli import main; main()"]

BT_SCRIPT = """
import sys
import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover

frame = pd.read_csv(sys.argv[1], index_col="timestamp", parse_dates=True)
frame.index = frame.index.tz_localize(None)
frame = frame.rename(columns=str.capitalize)

class EmaCross(Strategy):
    def init(self):
        close = pd.Series(self.data.Close)
        self.fast = self.I(lambda: close.ewm(span=12, adjust=False).mean().to_numpy())
        self.slow = self.I(lambda: close.ewm(span=26, adjust=False).mean().to_numpy())

    def next(self):
        if crossover(self.fast, self.slow):
            self.position.close()
            self.buy(size=0.99)
        elif crossover(self.slow, self.fast):
            self.position.close()
            self.sell(size=0.99)

stats = FractionalBacktest(frame, EmaCross, cash=10_000, commission=0.0004, finalize_trades=True).run()
print(stats)
"""

PANDAS_JSON_SCRIPT = """
import sys
import pandas as pd

frame = pd.read_parquet(sys.argv[1])
if len(sys.argv) > 2:
    out = pd.DataFrame({"time": frame.index, "equity": frame["close"].to_numpy()})
    with open(sys.argv[2], "w") as fh:
        fh.write(out.to_json(orient="records", date_format="iso", indent=1))
"""


def median_run(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_walk(n: int, seed: int = 7) -> pd.DataFrame:
    """1m candles: log-normal returns, opens at the previous close, wicks around the body."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    wick = np.abs(rng.normal(0, 0.0007, (2, n))) * close
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": rng.lognormal(3, 1, n),
        },
        index=pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="timestamp"),
    )
    return frame.round({"open": 2, "high": 2, "low": 2, "close": 2, "volume": 4})


def row(what: str, ours: float, ref: float, ref_name: str, target: float) -> None:
    verdict = "met" if ours < target else "missed"
    print(f"{what:<34}{ours:>9.3f} s{ref:>10.3f} s  {ref / ours:>6.2f}x  < {target:g} s  {verdict:<7}{ref_name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 runs per figure instead of 7")
    args = ap.parse_args()
    runs = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        year = tmp / "year-1h.csv"
        candles = extend_by_repetition(load_candles(bundled_path()), 8760)
        candles.to_csv(year, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%SZ")
        big = tmp / "million-1m.parquet"
        random_walk(1_000_000).to_parquet(big)
        bt_script = tmp / "bt_reference.py"
        bt_script.write_text(BT_SCRIPT)
        pd_script = tmp / "pandas_json_reference.py"
        pd_script.write_text(PANDAS_JSON_SCRIPT)
        print(f"data: {len(candles):,} hourly bars (bundled BTC/USDT 1h repeated), 1,000,000 random-walk 1m bars; "
              f"median of {runs} processes each")  # fmt: skip

        backtest = [*TRADINGBOT, "backtest", "--strategy", "ema_crossover"]
        subprocess.run([*backtest, "--data", str(year)], check=True, capture_output=True)  # numba cache warm-up
        print(f"\n{'':<34}{'ours':>11}{'reference':>12}{'ratio':>9}  target")
        help_s = median_run([*TRADINGBOT, "--help"], runs)
        import_bt = median_run([sys.executable, "-c", "import backtesting"], runs)
        row("tradingbot --help", help_s, import_bt, "import backtesting", 0.3)

        ours_year = median_run([*backtest, "--data", str(year)], runs)
        ref_year = median_run([sys.executable, str(bt_script), str(year)], runs)
        row("backtest, one year of 1h bars", ours_year, ref_year, "backtesting.py script, same file", 0.8)

        big_runs = max(3, runs // 2)
        plain = median_run([*backtest, "--data", str(big)], big_runs)
        with_json = median_run([*backtest, "--data", str(big), "--json", str(tmp / "out.json")], big_runs)
        ref_plain = median_run([sys.executable, str(pd_script), str(big)], big_runs)
        ref_json = median_run([sys.executable, str(pd_script), str(big), str(tmp / "ref.json")], big_runs)
        row("--json adds, 1,000,000 bars", with_json - plain, ref_json - ref_plain, "pandas to_json indent=1", 2.0)
        size = (tmp / "out.json").stat().st_size / 1e6
        print(f"  (whole processes at 1,000,000 bars: backtest {plain:.2f} s, with --json {with_json:.2f} s, "
              f"{size:.0f} MB; pandas reference {ref_plain:.2f} s / {ref_json:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
