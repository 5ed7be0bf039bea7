"""Walk-forward windows, grid and genetic search, the deflated Sharpe ratio and the promotion rule
(tradingbot.domain.optimise), on the packaged BTC sample."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from tradingbot.domain.backtest import BacktestConfig, run_strategy
from tradingbot.domain.candles import bundled_path, load_candles
from tradingbot.domain.optimise import (
    GeneticConfig,
    OptimiseError,
    PromotionPolicy,
    SearchSpace,
    SearchSpec,
    WalkForwardSpec,
    Window,
    decide,
    genetic_search,
    optimise,
)
from tradingbot.domain.optimise.evaluate import STATS, Evaluator
from tradingbot.domain.optimise.stats import (
    deflated_sharpe,
    expected_max_sharpe,
    parameter_stability,
    walk_forward_efficiency,
)
from tradingbot.domain.strategies import Param, Signals, Strategy, get_strategy


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_candles(bundled_path())


SMALL = {"fast": [5, 10, 15, 20], "slow": [30, 50, 80, 120]}


# ------------------------------------------------------------------ windows


def test_rolling_windows_tile_the_history_without_overlap() -> None:
    spec = WalkForwardSpec(folds=4, window="rolling", in_sample_ratio=3.0)
    pairs = spec.windows(700)
    oos = 700 // 7
    assert [p[1] for p in pairs] == [Window(300 + i * oos, 300 + (i + 1) * oos) for i in range(4)]
    assert all(train.end == test.start and train.bars == 300 for train, test in pairs)
    assert pairs[0][0] == Window(0, 300) and pairs[3][0] == Window(300, 600)
    assert pairs[-1][1].end == 700  # the last test ends on the last bar
    assert spec.latest_window(700) == Window(400, 700)


def test_anchored_windows_train_on_everything_before_the_test() -> None:
    pairs = WalkForwardSpec(folds=3, window="anchored", in_sample_ratio=2.0).windows(500)
    assert [train.start for train, _ in pairs] == [0, 0, 0]
    assert [train.end for train, _ in pairs] == [test.start for _, test in pairs]
    assert pairs[1][0].bars > pairs[0][0].bars


def test_a_window_longer_than_the_history_is_refused_with_the_numbers() -> None:
    spec = WalkForwardSpec(folds=6, in_sample_bars=5000, out_of_sample_bars=500)
    with pytest.raises(
        OptimiseError, match=r"longer than the history: 5,000 in-sample \+ 6 x 500 .* 8,000, the history has 5,980"
    ):
        spec.windows(5980)
    with pytest.raises(OptimiseError, match="at least 30"):
        WalkForwardSpec(folds=20).windows(200)
    with pytest.raises(OptimiseError, match="folds=0"):
        WalkForwardSpec(folds=0)


# ------------------------------------------------------------------ spaces


def test_an_empty_value_list_and_an_unknown_parameter_are_named() -> None:
    with pytest.raises(OptimiseError, match="parameter 'fast': the value list is empty"):
        SearchSpace.of("ema_crossover", ranges={"fast": []})
    with pytest.raises(OptimiseError, match="parameter 'nope'"):
        SearchSpace.of("ema_crossover", ranges={"nope": [1]})
    with pytest.raises(OptimiseError, match="outside its range"):
        SearchSpace.of("ema_crossover", ranges={"slow": [999]})


def test_a_space_the_constraint_rejects_entirely_is_refused_with_the_reason() -> None:
    with pytest.raises(OptimiseError, match=r"no valid combination .*fast \(50\) must be smaller than slow \(20\)"):
        SearchSpace.of("ema_crossover", ranges={"fast": [50, 60], "slow": [20]})


def test_points_respect_the_constraint() -> None:
    space = SearchSpace.of("ema_crossover", ranges={"fast": [5, 30, 60], "slow": [25, 50]})
    assert space.size == 6
    assert space.points() == [{"fast": 5, "slow": 25}, {"fast": 5, "slow": 50}, {"fast": 30, "slow": 50}]


# ------------------------------------------------------------------ evaluator


def test_the_grid_kernel_on_a_window_matches_a_single_run_on_the_same_bars(candles: pd.DataFrame) -> None:
    """Signals come from the whole history (warmed-up indicators); a window's table row equals a
    full run of the same sliced signals, and the grid kernel agrees with run_strategy on all bars."""
    strat = get_strategy("ema_crossover")
    ev = Evaluator(candles, strat)
    win = Window(1000, 3000)
    table = ev.table([{"fast": 10, "slow": 50}], [win, Window(0, len(candles))])
    one = ev.run({"fast": 10, "slow": 50}, win)
    assert table[0, 0, STATS.index("total_return")] == pytest.approx(one.metrics["total_return"], rel=1e-12)
    assert table[0, 0, STATS.index("trades")] == one.metrics["trades"]
    full = run_strategy(candles, strat, {"fast": 10, "slow": 50})
    assert table[1, 0, STATS.index("sharpe")] == pytest.approx(full.metrics["sharpe"], rel=1e-12)
    assert one.equity.index[0] == candles.index[1000]


# ------------------------------------------------------------------ walk-forward


def test_walk_forward_chooses_the_in_sample_best_and_stitches_its_out_of_sample_runs(candles: pd.DataFrame) -> None:
    space = SearchSpace.of("ema_crossover", ranges=SMALL)
    res = optimise(candles, space, walk_forward=WalkForwardSpec(folds=4))
    assert len(res.folds) == 4
    strat = space.strategy
    level = BacktestConfig().initial_cash
    for fold in res.folds:
        sub = candles.iloc[fold.in_sample.start : fold.in_sample.end]
        # the chosen row is the in-sample table's best Sharpe (among combos that traded)
        sharpes = fold.candidates.table[:, STATS.index("sharpe")]
        assert fold.params == fold.candidates.params[int(np.argmax(sharpes))]
        assert fold.in_sample_metrics is not None and fold.in_sample_metrics["sharpe"] == pytest.approx(sharpes.max())
        assert len(sub) == fold.in_sample.bars
        assert fold.out_of_sample_metrics is not None
        level *= 1 + fold.out_of_sample_metrics["total_return"]
    assert res.stitched_equity is not None
    assert len(res.stitched_equity) == sum(f.out_of_sample.bars for f in res.folds)
    assert res.stitched_equity.index.is_monotonic_increasing
    assert float(res.stitched_equity.iloc[-1]) == pytest.approx(level, rel=1e-9)
    assert res.summary["out_of_sample_return"] == pytest.approx(level / 10_000 - 1, rel=1e-9)
    # the baseline (defaults) is run through the very same test windows
    first = res.folds[0].out_of_sample
    base = Evaluator(candles, strat).run(strat.defaults, first)
    assert res.folds[0].baseline_return == pytest.approx(base.metrics["total_return"], rel=1e-12)
    # buy-and-hold over the test bars, compounded
    bh = np.prod([candles["close"].iloc[f.out_of_sample.end - 1] / candles["open"].iloc[f.out_of_sample.start]
                  for f in res.folds]) - 1  # fmt: skip
    assert res.summary["buy_hold_return"] == pytest.approx(bh, rel=1e-12)
    assert res.recommended is not None and res.recommended in space.points()
    doc = res.to_dict(candidates=True)
    assert len(doc["candidates"]) == 5 * len(space.points())
    assert doc["folds"][0]["times"]["out_of_sample_start"] == candles.index[first.start].isoformat()


def _never_trades() -> Strategy:
    def fn(ind: object, n: int) -> Signals:
        z = np.zeros(len(ind), dtype=np.bool_)  # type: ignore[arg-type]
        return Signals(z, z, z, z)

    return Strategy("never", "never trades", (Param("n", "int", 1, 1, 3, 1),), fn)


def test_a_fold_with_no_trades_is_flat_and_explicitly_not_promoted(candles: pd.DataFrame) -> None:
    res = optimise(candles, SearchSpace.of(_never_trades()), walk_forward=WalkForwardSpec(folds=3))
    assert [f.status for f in res.folds] == ["no_trades_in_sample"] * 3
    assert all("no combination made 1 trade(s) in sample" in f.reason for f in res.folds)
    assert res.stitched_equity is not None and set(res.stitched_equity.round(9)) == {10_000.0}
    decision = decide(res, PromotionPolicy(margin=0.0, min_deflated_sharpe=0.0))
    assert not decision.promote
    assert decision.reason.startswith("not promoted: no out-of-sample evidence")


def test_a_search_without_walk_forward_is_never_promoted(candles: pd.DataFrame) -> None:
    res = optimise(candles, SearchSpace.of("ema_crossover", ranges=SMALL))
    assert res.folds == [] and res.recommended is not None
    d = decide(res, PromotionPolicy(margin=0.0, min_deflated_sharpe=0.0))
    assert not d.promote and "no out-of-sample evidence" in d.reason


def test_promotion_needs_to_beat_current_params_and_buy_and_hold_by_the_margin(candles: pd.DataFrame) -> None:
    res = optimise(candles, SearchSpace.of("ema_crossover", ranges=SMALL), walk_forward=WalkForwardSpec(folds=3))
    s = res.summary
    oos, base = s["out_of_sample_return"], s["baseline_return"]
    # a margin just above the lead over the current parameters refuses, naming them
    d = decide(res, PromotionPolicy(margin=max(oos - base, 0) + 0.01, min_deflated_sharpe=0.0))
    assert not d.promote and "does not beat the current parameters'" in d.reason
    assert d.evidence["out_of_sample_return"] == oos and d.evidence["params"] == res.recommended

    def with_summary(**kw: float) -> object:
        return dataclasses.replace(res, summary=s | kw)

    policy = PromotionPolicy(margin=0.02, min_deflated_sharpe=0.5)
    beaten_by_hold = decide(with_summary(baseline_return=oos - 1, buy_hold_return=oos - 0.01), policy)  # type: ignore[arg-type]
    assert not beaten_by_hold.promote and "does not beat buy-and-hold's" in beaten_by_hold.reason
    lucky = decide(with_summary(baseline_return=oos - 1, buy_hold_return=oos - 1, deflated_sharpe=0.3), policy)  # type: ignore[arg-type]
    assert not lucky.promote and "deflated Sharpe ratio 0.300 < 0.5 (multiple-testing guard)" in lucky.reason
    good = decide(with_summary(baseline_return=oos - 1, buy_hold_return=oos - 1, deflated_sharpe=0.9), policy)  # type: ignore[arg-type]
    assert good.promote and good.reason.startswith("promoted: ")
    with pytest.raises(OptimiseError, match=r"margin=-0\.1"):
        PromotionPolicy(margin=-0.1)


# ------------------------------------------------------------------ genetic


def test_genetic_search_respects_constraints_budget_and_seed(candles: pd.DataFrame) -> None:
    space = SearchSpace.of("ema_crossover", ranges={"fast": list(range(2, 40, 2)), "slow": list(range(10, 120, 5))})
    ev = Evaluator(candles, space.strategy)
    whole = Window(0, len(candles))
    cfg = GeneticConfig(budget=60, population=12, seed=7)
    params, table = genetic_search(space, lambda b: ev.table(b, [whole])[0], cfg)
    assert len(params) == 60 == len(table)
    assert all(p["fast"] < p["slow"] for p in params)  # the constraint: never backtested
    assert len({tuple(p.values()) for p in params}) == 60  # no point backtested twice
    assert ev.evaluations == 60
    again, _ = genetic_search(space, lambda b: ev.table(b, [whole])[0], cfg)
    assert again == params  # the seed makes it repeatable
    # NSGA-II does better than its first (random) generation
    sharpe = table[:, STATS.index("sharpe")]
    assert sharpe.max() > sharpe[:12].max()


def test_genetic_multi_objective_returns_a_pareto_choice(candles: pd.DataFrame) -> None:
    space = SearchSpace.of("ema_crossover", ranges=SMALL)
    spec = SearchSpec(method="genetic", objectives=("total_return", "max_drawdown"), budget=10, population=4)
    res = optimise(candles, space, search=spec)
    assert res.latest.table.shape == (10, len(STATS))
    chosen = res.latest.params.index(res.recommended)
    r, dd = res.latest.table[:, STATS.index("total_return")], res.latest.table[:, STATS.index("max_drawdown")]
    # nothing evaluated is better on both objectives than the choice
    assert not np.any((r > r[chosen]) & (dd < dd[chosen]))
    with pytest.raises(OptimiseError, match="objective 'nope'"):
        SearchSpec(objectives=("nope",))


# ------------------------------------------------------------------ statistics


def test_expected_max_sharpe_matches_the_maximum_of_independent_normal_trials() -> None:
    """Bailey & Lopez de Prado's SR0 against a Monte Carlo of the best of N unit-variance trials."""
    rng = np.random.default_rng(1)
    for n in (10, 100, 1000):
        trials = rng.standard_normal(n)
        sr0 = expected_max_sharpe(trials) / float(np.std(trials, ddof=1))
        simulated = rng.standard_normal((4000, n)).max(axis=1).mean()
        assert sr0 == pytest.approx(simulated, rel=0.03)
    assert expected_max_sharpe([0.3]) == 0.0


def test_deflated_sharpe_falls_as_the_number_of_trials_grows() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.001, 0.01, 2000)  # per-bar Sharpe about 0.1
    trials = rng.normal(0.0, 0.03, 1000)
    one = deflated_sharpe(returns, trials[:1])
    few, many = deflated_sharpe(returns, trials[:10]), deflated_sharpe(returns, trials)
    assert one is not None and few is not None and many is not None
    assert one > few > many
    # with one trial it is the probabilistic Sharpe ratio against 0: Z(SR sqrt(T-1) / sqrt(...))
    sr = returns.mean() / returns.std(ddof=1)
    z = (returns - returns.mean()) / returns.std()
    skew, kurt = (z**3).mean(), (z**4).mean()
    expected = 0.5 * (
        1 + math.erf(sr * math.sqrt(1999) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2) / math.sqrt(2))
    )
    assert one == pytest.approx(expected, rel=1e-9)
    assert deflated_sharpe(np.zeros(50), trials) is None


def test_walk_forward_efficiency_and_stability() -> None:
    assert walk_forward_efficiency([0.1, 0.1], [100, 100], [0.05, 0.05], [50, 50], 8760) == pytest.approx(1.0)
    assert walk_forward_efficiency([-0.1], [100], [0.05], [50], 8760) is None
    same = parameter_stability([{"a": 5}, {"a": 5}], {"a": [1, 5, 9]})
    assert same is not None and same.spread == {"a": 0.0} and same.modal_share == 1.0 and same.score == 1.0
    swing = parameter_stability([{"a": 1}, {"a": 9}], {"a": [1, 5, 9]})
    assert swing is not None and swing.spread["a"] == pytest.approx(0.5) and swing.modal_share == 0.5


def test_the_fan_out_pieces_assemble_into_the_same_result_as_one_run(candles: pd.DataFrame) -> None:
    """What the Distributed Map computes fold by fold (through JSON) equals the in-process run."""
    import json

    from tradingbot.domain.optimise.walkforward import assemble, optimise_fold, piece_doc, piece_from_doc

    space = SearchSpace.of("ema_crossover", ranges=SMALL)
    wf = WalkForwardSpec(folds=3, window="anchored")
    whole = optimise(candles, space, walk_forward=wf)
    pieces = [
        piece_from_doc(json.loads(json.dumps(piece_doc(optimise_fold(candles, space, index=i, walk_forward=wf)),
                                             allow_nan=False)), candles)
        for i in range(4)
    ]  # fmt: skip
    *folds, latest = pieces
    again = assemble(candles, space, SearchSpec(), wf, BacktestConfig(), whole.baseline, folds, latest,  # type: ignore[arg-type]
                     whole.evaluations, 8760.0)  # fmt: skip
    assert again.recommended == whole.recommended
    assert [f.params for f in again.folds] == [f.params for f in whole.folds]
    for key in ("out_of_sample_return", "baseline_return", "buy_hold_return", "out_of_sample_trades"):
        assert again.summary[key] == pytest.approx(whole.summary[key], rel=1e-12)
    assert again.stitched_equity is not None and whole.stitched_equity is not None
    assert np.allclose(again.stitched_equity.to_numpy(), whole.stitched_equity.to_numpy())
    with pytest.raises(OptimiseError, match="fold 9"):
        optimise_fold(candles, space, index=9, walk_forward=wf)
