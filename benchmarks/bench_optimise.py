"""Optimisation speed, search quality and memory, each beside a reference measured in the same run.

Data: one year of hourly bars (8,760; the bundled BTC/USDT candles extended as in bench_backtest.py),
strategy ema_crossover, a 1,000-combination grid (fast 5..54 x slow 60..250 step 10).

1. Walk-forward: 6 rolling folds x 1,000 combinations (+ the latest window), on one core. Target < 3 s.
   Reference: the same 7,000 window backtests as 7,000 separate run_strategy calls (our own
   single-run API), timed on 200 of them and scaled.
2. The 1,000-combination grid, backtests per second, beside backtesting.py running the same signals
   (vectorbt is not the reference: vectorbt 1.0.0 is the newest release that installs next to
   pandas 2.3 / numba 0.61 / numpy 2.2 with pinned constraints, and it fails on import against the
   project's plotly 7 ("Bad property path: scattermapbox"); the unpinned install upgrades pandas to 3,
   which breaks pandas-ta). backtesting.py is timed on 5 combinations and its rate extrapolated.
3. Genetic search (optuna NSGA-II plus local refinement of its best points, 20 % of the grid's
   evaluations) against the grid's best Sharpe, median over 5 seeds; random search with the same
   budget beside it. Target: within 2 %.
4. Peak memory (tracemalloc) of the walk-forward at 250 / 500 / 1,000 / 2,000 combinations. Target: flat
   (largest / smallest < 2 for 8x the combinations).

    python benchmarks/bench_optimise.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
import warnings

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core

sys.path.insert(0, os.path.dirname(__file__))
from bench_backtest import FEE, backtesting_py_run, grid_combos, year_of_bars
from tradingbot.domain.backtest import BacktestConfig, run_strategy
from tradingbot.domain.optimise import SearchSpace, WalkForwardSpec, optimise
from tradingbot.domain.optimise.evaluate import STATS, Evaluator, Window
from tradingbot.domain.optimise.genetic import GeneticConfig, genetic_search

warnings.filterwarnings("ignore")
RANGES = {"fast": list(range(5, 55)), "slow": list(range(60, 260, 10))}
CFG = BacktestConfig(fee=FEE)


def best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats and seeds")
    args = ap.parse_args()
    candles = year_of_bars()
    space = SearchSpace.of("ema_crossover", ranges=RANGES)
    combos = space.points()
    assert len(combos) == 1000 == len(grid_combos())
    wf = WalkForwardSpec(folds=6)
    ok = True

    # 1. walk-forward --------------------------------------------------------------------------
    optimise(candles, SearchSpace.of("ema_crossover", ranges={"fast": [5], "slow": [60]}), walk_forward=wf,
             config=CFG)  # fmt: skip  # compile / warm the numba cache
    ours = best_of(lambda: optimise(candles, space, walk_forward=wf, config=CFG), 1 if args.quick else 3)
    pairs = wf.windows(len(candles))
    windows = [p[0] for p in pairs] + [wf.latest_window(len(candles))]
    sample = [(c, w) for w in windows for c in combos[:: max(1, len(combos) // 29)]][:200]
    t0 = time.perf_counter()
    for c, w in sample:
        run_strategy(candles.iloc[w.start : w.end], "ema_crossover", c, CFG)
    one_by_one = (time.perf_counter() - t0) / len(sample) * len(combos) * len(windows)
    print(f"walk-forward, 6 folds x 1,000 combinations, {len(candles):,} bars, one core:")
    print(f"  ours {ours:.2f} s (target < 3 s) | 7,000 separate run_strategy calls (scaled from 200) "
          f"{one_by_one:.1f} s | ratio {one_by_one / ours:.0f}x")  # fmt: skip
    ok &= ours < 3.0

    # 2. grid beside backtesting.py -------------------------------------------------------------
    ev = Evaluator(candles, "ema_crossover", config=CFG)
    whole = Window(0, len(candles))
    grid_s = best_of(lambda: ev.table(combos, [whole]), 1 if args.quick else 3)
    ours_rate = len(combos) / grid_s
    n_ref = 2 if args.quick else 5
    ref = sum(backtesting_py_run(candles, "ema_crossover") for _ in range(n_ref)) / n_ref
    ref_rate = 1 / ref
    print("\n1,000-combination grid, backtests per second (vectorbt does not import here, see the docstring):")
    print(f"  ours {ours_rate:,.0f}/s ({grid_s:.2f} s) | backtesting.py {ref_rate:.1f}/s (timed on {n_ref}, "
          f"extrapolated: {1000 * ref:.0f} s) | ratio {ours_rate / ref_rate:,.0f}x")  # fmt: skip

    # 3. genetic against the grid ----------------------------------------------------------------
    table = ev.table(combos, [whole])[0]
    j = STATS.index("sharpe")
    grid_best = float(table[:, j].max())
    budget = len(combos) // 5
    ga, rnd = [], []
    for seed in range(3 if args.quick else 5):
        params, rows = genetic_search(space, lambda b: ev.table(b, [whole])[0],
                                      GeneticConfig(budget=budget, population=20, seed=seed))  # fmt: skip
        assert len(params) <= budget
        ga.append(float(rows[:, j].max()))
        picks = random.Random(seed).sample(combos, budget)
        rnd.append(float(ev.table(picks, [whole])[0][:, j].max()))
    ga_med, rnd_med = statistics.median(ga), statistics.median(rnd)
    gap = (grid_best - ga_med) / abs(grid_best)
    print(
        f"genetic search (NSGA-II + refinement, {budget} evaluations = 20 % of the grid), best Sharpe, median of "
        f"{len(ga)} seeds:"
    )
    print(f"  grid best {grid_best:.4f} | genetic {ga_med:.4f} ({gap:+.2%} short, target <= 2 %) | random search, "
          f"same budget, {rnd_med:.4f} ({(grid_best - rnd_med) / abs(grid_best):+.2%} short)")  # fmt: skip
    ok &= gap <= 0.02

    # 4. memory -------------------------------------------------------------------------------------
    slow = list(range(50, 250, 4))  # 50 values, every one above any fast length below
    peaks = {}
    for n_fast in (5, 10, 20, 40):
        s = SearchSpace.of("ema_crossover", ranges={"fast": list(range(5, 5 + n_fast)), "slow": slow})
        gc.collect()
        tracemalloc.start()
        optimise(candles, s, walk_forward=wf, config=CFG)
        peaks[len(s.points())] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    sizes = sorted(peaks)
    print("peak memory of the walk-forward (tracemalloc), by combinations:")
    print("  " + " | ".join(f"{n:,}: {peaks[n] / 2**20:.1f} MiB" for n in sizes)
          + f" | ratio largest / smallest {peaks[sizes[-1]] / peaks[sizes[0]]:.2f} for {sizes[-1] / sizes[0]:.0f}x the "
          "combinations")  # fmt: skip
    ok &= peaks[sizes[-1]] / peaks[sizes[0]] < 2.0
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
