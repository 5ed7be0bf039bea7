"""Grid or genetic search, alone or walked forward: optimise in sample, evaluate the chosen
parameters out of sample, fold after fold; the out-of-sample segments stitched into one equity
curve are the evidence a promotion is judged on.

Windows (``n`` bars, ``K`` folds, out-of-sample length ``L``, in-sample length ``I``; by default
``L = n // (ratio + K)`` and ``I = n - K * L``):

* rolling: fold k trains on bars ``[k L, I + k L)`` and tests on ``[I + k L, I + (k + 1) L)``;
* anchored: the same tests, each trained on every bar before it, ``[0, I + k L)``.

After the folds, the same search on the latest in-sample window (rolling: the last ``I`` bars;
anchored: all of them) gives the parameters to trade from now on: the ones a promotion would
install. Their evidence is the walk-forward's stitched out-of-sample result, which measured this
very procedure on bars it had not seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from tradingbot.domain.backtest import BacktestConfig
from tradingbot.domain.indicators import Indicators
from tradingbot.domain.optimise.evaluate import STATS, Evaluator, Window, maximise, row_metrics
from tradingbot.domain.optimise.genetic import GeneticConfig, genetic_search, pareto_front
from tradingbot.domain.optimise.space import OptimiseError, SearchSpace
from tradingbot.domain.optimise.stats import Stability, deflated_sharpe, parameter_stability, walk_forward_efficiency
from tradingbot.domain.strategies import Params

Method = Literal["grid", "genetic"]
WindowKind = Literal["rolling", "anchored"]
MIN_WINDOW_BARS = 30  # fewer bars than this say nothing about a strategy
_SHARPE = STATS.index("sharpe")
_TRADES = STATS.index("trades")
_RETURN = STATS.index("total_return")
_DRAWDOWN = STATS.index("max_drawdown")


@dataclass(frozen=True)
class SearchSpec:
    """How one window is searched. ``objectives``: one statistic of the grid kernel (``sharpe``,
    ``total_return`` ...) or several (multi-objective; the chosen point is then the Pareto member
    with the best return over drawdown). A combination with fewer than ``min_trades`` trades in
    sample is never chosen. Genetic only: ``budget`` distinct backtests per window (default: 20 %
    of the grid, at least one population), ``population``, ``seed``."""

    method: Method = "grid"
    objectives: tuple[str, ...] = ("sharpe",)
    min_trades: int = 1
    budget: int | None = None
    population: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("grid", "genetic"):
            raise OptimiseError(f"method {self.method!r}: choose grid or genetic")
        if not self.objectives:
            raise OptimiseError("objectives: give at least one statistic")
        for name in self.objectives:
            if name not in STATS:
                raise OptimiseError(f"objective {name!r}: choose one of {', '.join(STATS)}")
        if self.min_trades < 0:
            raise OptimiseError(f"min_trades={self.min_trades}: must not be negative")
        if self.budget is not None and self.budget < 1:
            raise OptimiseError(f"budget={self.budget}: must be at least 1")


@dataclass(frozen=True)
class WalkForwardSpec:
    """``folds`` out-of-sample tests, ``window`` rolling or anchored; lengths from
    ``in_sample_ratio`` (in-sample bars per out-of-sample bar) unless given in bars."""

    folds: int
    window: WindowKind = "rolling"
    in_sample_ratio: float = 3.0
    in_sample_bars: int | None = None
    out_of_sample_bars: int | None = None

    def __post_init__(self) -> None:
        if self.folds < 1:
            raise OptimiseError(f"folds={self.folds}: a walk-forward needs at least 1 fold")
        if self.window not in ("rolling", "anchored"):
            raise OptimiseError(f"window {self.window!r}: choose rolling or anchored")
        if not self.in_sample_ratio > 0:
            raise OptimiseError(f"in_sample_ratio={self.in_sample_ratio}: must be positive")

    def windows(self, n_bars: int) -> list[tuple[Window, Window]]:
        """(in-sample, out-of-sample) per fold; :class:`OptimiseError` when they do not fit in
        ``n_bars`` or a window would be shorter than ``MIN_WINDOW_BARS``."""
        k = self.folds
        oos = self.out_of_sample_bars or int(n_bars // (self.in_sample_ratio + k))
        ins = self.in_sample_bars or (n_bars - k * oos)
        need = ins + k * oos
        if need > n_bars:
            raise OptimiseError(
                f"walk-forward window longer than the history: {ins:,} in-sample + {k} x {oos:,} out-of-sample "
                f"bars = {need:,}, the history has {n_bars:,}"
            )
        if oos < MIN_WINDOW_BARS or ins < MIN_WINDOW_BARS:
            raise OptimiseError(
                f"walk-forward of {k} folds on {n_bars:,} bars: windows of {ins:,} in-sample / {oos:,} "
                f"out-of-sample bars; each needs at least {MIN_WINDOW_BARS} (fewer folds, or more history)"
            )
        first = n_bars - need  # the unused head when explicit lengths leave bars over
        out = []
        for i in range(k):
            test = Window(first + ins + i * oos, first + ins + (i + 1) * oos)
            train = Window(test.start - ins if self.window == "rolling" else 0, test.start)
            out.append((train, test))
        return out

    def latest_window(self, n_bars: int) -> Window:
        """The window the parameters to trade now are chosen on."""
        ins = self.windows(n_bars)[-1][0].bars if self.window == "rolling" else n_bars
        return Window(n_bars - ins, n_bars) if self.window == "rolling" else Window(0, n_bars)


@dataclass(frozen=True)
class Candidates:
    """Every combination backtested on one window, with its statistics (``STATS`` columns)."""

    window: Window
    params: list[Params]
    table: np.ndarray

    def best(self, spec: SearchSpec) -> tuple[int | None, str]:
        """Index of the chosen combination, or ``None`` with the reason."""
        if len(self.params) == 0:
            return None, "no combination was evaluated"
        eligible = np.flatnonzero(self.table[:, _TRADES] >= spec.min_trades)
        if len(eligible) == 0:
            return None, f"no combination made {max(spec.min_trades, 1)} trade(s) in sample"
        sub = self.table[eligible]
        if len(spec.objectives) == 1:
            j = STATS.index(spec.objectives[0])
            vals = np.nan_to_num(sub[:, j], nan=-np.inf if maximise(spec.objectives[0]) else np.inf)
            pick = int(np.argmax(vals) if maximise(spec.objectives[0]) else np.argmin(vals))
            return int(eligible[pick]), "best " + spec.objectives[0]
        front = pareto_front(sub, spec.objectives)
        ratio = sub[front, _RETURN] / np.maximum(sub[front, _DRAWDOWN], 1e-9)
        return int(eligible[front[int(np.argmax(ratio))]]), "Pareto member with the best return / drawdown"


@dataclass(frozen=True)
class Fold:
    """One fold: what was chosen in sample and how it did out of sample. ``status``: ``ok``,
    ``no_trades_in_sample`` (nothing chosen; the out-of-sample segment stays flat) or
    ``no_trades_out_of_sample`` (chosen, but it never traded on the test bars)."""

    index: int
    in_sample: Window
    out_of_sample: Window
    times: dict[str, str]
    params: Params | None
    status: str
    reason: str
    in_sample_metrics: dict[str, float] | None
    out_of_sample_metrics: dict[str, float] | None
    baseline_return: float
    buy_hold_return: float
    deflated_sharpe: float | None
    evaluations: int
    candidates: Candidates = field(repr=False)
    oos_equity: pd.Series | None = field(default=None, repr=False)
    oos_trades: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "in_sample": asdict(self.in_sample),
            "out_of_sample": asdict(self.out_of_sample),
            "times": self.times,
            "params": self.params,
            "status": self.status,
            "reason": self.reason,
            "in_sample_metrics": _clean(self.in_sample_metrics),
            "out_of_sample_metrics": _clean(self.out_of_sample_metrics),
            "baseline_return": self.baseline_return,
            "buy_hold_return": self.buy_hold_return,
            "deflated_sharpe": self.deflated_sharpe,
            "evaluations": self.evaluations,
        }


@dataclass(frozen=True)
class OptimisationResult:
    """A search (``folds`` empty: in sample only, no out-of-sample evidence) or a walk-forward."""

    strategy: str
    search: SearchSpec
    walk_forward: WalkForwardSpec | None
    config: BacktestConfig
    space: dict[str, list[int | float]]
    bars: int
    period: dict[str, str]
    baseline: Params
    folds: list[Fold]
    recommended: Params | None
    recommended_reason: str
    latest: Candidates = field(repr=False)
    stitched_equity: pd.Series | None = field(repr=False)
    summary: dict[str, Any]
    evaluations: int

    @property
    def has_evidence(self) -> bool:
        """Whether anything was tested out of sample."""
        return any(f.out_of_sample_metrics is not None for f in self.folds)

    def to_dict(self, *, candidates: bool = False) -> dict[str, Any]:
        """The JSON document; ``candidates`` adds every evaluated combination per window."""
        doc: dict[str, Any] = {
            "strategy": self.strategy,
            "search": asdict(self.search),
            "walk_forward": asdict(self.walk_forward) if self.walk_forward else None,
            "config": asdict(self.config),
            "space": self.space,
            "bars": self.bars,
            "period": self.period,
            "baseline": self.baseline,
            "recommended": self.recommended,
            "recommended_reason": self.recommended_reason,
            "summary": _clean(self.summary),
            "evaluations": self.evaluations,
            "folds": [f.to_dict() for f in self.folds],
        }
        if self.stitched_equity is not None:
            eq = self.stitched_equity
            doc["stitched_equity"] = {
                "time": [t.isoformat() for t in eq.index],
                "equity": [float(v) for v in eq.to_numpy()],
            }
        if candidates:
            doc["candidates"] = [
                {"fold": f.index, "params": p, "metrics": _clean(row_metrics(r))}
                for f in self.folds
                for p, r in zip(f.candidates.params, f.candidates.table, strict=True)
            ] + [
                {"fold": None, "params": p, "metrics": _clean(row_metrics(r))}
                for p, r in zip(self.latest.params, self.latest.table, strict=True)
            ]
        return doc


def _clean(d: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    return out


def _search(
    ev: Evaluator,
    space: SearchSpec,
    searched: SearchSpace,
    windows: list[Window],
    progress: Callable[[int], None] | None,
) -> list[Candidates]:
    if space.method == "grid":
        points = searched.points()
        tables = ev.table(points, windows, progress)
        return [Candidates(w, points, tables[i]) for i, w in enumerate(windows)]
    grid_size = len(searched.points())
    budget = space.budget or max(space.population, math.ceil(0.2 * grid_size))
    out = []
    for w in windows:
        cfg = GeneticConfig(budget=min(budget, grid_size), population=space.population,
                            objectives=space.objectives, seed=space.seed)  # fmt: skip

        def batch_fn(batch: list[Params], w: Window = w) -> np.ndarray:
            rows: np.ndarray = ev.table(batch, [w], progress)[0]
            return rows

        params, table = genetic_search(searched, batch_fn, cfg)
        out.append(Candidates(w, params, table))
    return out


def _iso(t: pd.Timestamp) -> str:
    return str(pd.Timestamp(t).isoformat())


def _returns(equity: pd.Series, initial: float) -> np.ndarray:
    e = equity.to_numpy(np.float64)
    prev = np.concatenate(([initial], e[:-1]))
    out: np.ndarray = np.divide(e - prev, prev, out=np.zeros_like(e), where=prev > 0)
    return out


def optimise(
    candles: pd.DataFrame,
    space: SearchSpace,
    *,
    search: SearchSpec | None = None,
    walk_forward: WalkForwardSpec | None = None,
    config: BacktestConfig | None = None,
    baseline: Params | None = None,
    funding: pd.Series | None = None,
    indicators: Indicators | None = None,
    progress: Callable[[int], None] | None = None,
) -> OptimisationResult:
    """Search ``space`` on ``candles`` (``walk_forward`` ``None``: once, on every bar) or walk it
    forward. ``baseline``: the parameters traded now (default: the strategy's defaults), run through
    the same out-of-sample windows so a promotion can compare like with like.

    Raises :class:`OptimiseError` for a window that does not fit the history."""
    spec = search or SearchSpec()
    ev = Evaluator(candles, space.strategy, config=config, funding=funding, indicators=indicators)
    n = len(candles)
    base = space.strategy.resolve(baseline or space.strategy.defaults)
    pairs = walk_forward.windows(n) if walk_forward else []
    latest_w = walk_forward.latest_window(n) if walk_forward else Window(0, n)
    if latest_w.bars < MIN_WINDOW_BARS:
        raise OptimiseError(f"history of {n} bars: at least {MIN_WINDOW_BARS} are needed")
    found = _search(ev, spec, space, [p[0] for p in pairs] + [latest_w], progress)
    base_table = ev.table([base], [p[1] for p in pairs])[:, 0, :] if pairs else np.empty((0, len(STATS)))
    folds = [
        _fold(ev, spec, cands, i, train, test, float(base_table[i, _RETURN]))
        for i, ((train, test), cands) in enumerate(zip(pairs, found[:-1], strict=True))
    ]
    return assemble(
        candles, space, spec, walk_forward, ev.config, base, folds, found[-1], ev.evaluations, ev.bars_per_year
    )


def optimise_fold(
    candles: pd.DataFrame,
    space: SearchSpace,
    *,
    index: int,
    walk_forward: WalkForwardSpec,
    search: SearchSpec | None = None,
    config: BacktestConfig | None = None,
    baseline: Params | None = None,
    funding: pd.Series | None = None,
) -> Fold | Candidates:
    """One fold of a walk-forward on its own (one item of the AWS fan-out): fold ``index`` in
    ``0 .. folds - 1``, or ``index == folds``: the search on the latest window (its candidates).
    :func:`assemble` joins the pieces into the same result :func:`optimise` computes in one go."""
    spec = search or SearchSpec()
    if not 0 <= index <= walk_forward.folds:
        raise OptimiseError(f"fold {index}: choose 0 .. {walk_forward.folds} (the last is the latest window)")
    ev = Evaluator(candles, space.strategy, config=config, funding=funding)
    pairs = walk_forward.windows(len(candles))
    if index == walk_forward.folds:
        return _search(ev, spec, space, [walk_forward.latest_window(len(candles))], None)[0]
    train, test = pairs[index]
    base = space.strategy.resolve(baseline or space.strategy.defaults)
    cands = _search(ev, spec, space, [train], None)[0]
    base_return = float(ev.table([base], [test])[0, 0, _RETURN])
    return _fold(ev, spec, cands, index, train, test, base_return)


def _fold(
    ev: Evaluator, spec: SearchSpec, cands: Candidates, i: int, train: Window, test: Window, base_return: float
) -> Fold:
    idx = ev.candles.index
    times = {
        "in_sample_start": _iso(idx[train.start]), "in_sample_end": _iso(idx[train.end - 1]),
        "out_of_sample_start": _iso(idx[test.start]), "out_of_sample_end": _iso(idx[test.end - 1]),
    }  # fmt: skip
    bh = float(ev.candles["close"].iloc[test.end - 1] / ev.candles["open"].iloc[test.start] - 1.0)
    pick, why = cands.best(spec)
    common: dict[str, Any] = {"index": i, "in_sample": train, "out_of_sample": test, "times": times,
                              "baseline_return": base_return, "buy_hold_return": bh,
                              "evaluations": len(cands.params), "candidates": cands}  # fmt: skip
    if pick is None:
        return Fold(params=None, status="no_trades_in_sample", reason=why, in_sample_metrics=None,
                    out_of_sample_metrics=None, deflated_sharpe=None, **common)  # fmt: skip
    params = cands.params[pick]
    cash = ev.config.initial_cash
    is_run = ev.run(params, train)
    trial_sr = cands.table[:, _SHARPE] / math.sqrt(ev.bars_per_year)
    dsr = deflated_sharpe(_returns(is_run.equity, cash), trial_sr)
    oos = ev.run(params, test)
    oos_m = {k: float(v) for k, v in oos.metrics.items()}
    status, reason = ("ok", why) if oos.metrics["trades"] else (
        "no_trades_out_of_sample", f"{why}; it made no trade out of sample (flat)")  # fmt: skip
    return Fold(params=params, status=status, reason=reason, in_sample_metrics=row_metrics(cands.table[pick]),
                out_of_sample_metrics=oos_m, deflated_sharpe=dsr, oos_equity=oos.equity,
                oos_trades=oos.trades[["pnl"]], **common)  # fmt: skip


def assemble(
    candles: pd.DataFrame,
    space: SearchSpace,
    spec: SearchSpec,
    walk_forward: WalkForwardSpec | None,
    config: BacktestConfig,
    baseline: Params,
    folds: list[Fold],
    latest: Candidates,
    evaluations: int,
    bars_per_year: float,
) -> OptimisationResult:
    """The run's result from its folds (in order) and the latest window's candidates."""
    idx = candles.index
    cash = config.initial_cash
    segments: list[pd.Series] = []
    level = cash
    for fold in folds:
        test = fold.out_of_sample
        if fold.oos_equity is None:
            segments.append(pd.Series(level, index=idx[test.start : test.end], dtype=np.float64))
            continue
        segments.append(fold.oos_equity / cash * level)
        level = float(segments[-1].iloc[-1])
    pick, why = latest.best(spec)
    stitched = pd.concat(segments) if segments else None
    summary = _summary(bars_per_year, folds, stitched, cash, spec, space) if walk_forward else {
        "in_sample": row_metrics(latest.table[pick]) if pick is not None else None}  # fmt: skip
    return OptimisationResult(
        strategy=space.strategy.name, search=spec, walk_forward=walk_forward, config=config,
        space={a.name: list(a.values) for a in space.axes}, bars=len(candles),
        period={"start": _iso(idx[0]), "end": _iso(idx[-1])}, baseline=baseline, folds=folds,
        recommended=latest.params[pick] if pick is not None else None, recommended_reason=why, latest=latest,
        stitched_equity=stitched, summary=summary, evaluations=evaluations,
    )  # fmt: skip


def fixed_params_return(
    candles: pd.DataFrame, space: SearchSpace, walk_forward: WalkForwardSpec, params: Params,
    config: BacktestConfig | None = None,
) -> float:  # fmt: skip
    """The compounded out-of-sample return of ``params`` held fixed through the walk-forward's
    test windows: what the parameters traded now would have made on the same bars."""
    ev = Evaluator(candles, space.strategy, config=config)
    tests = [p[1] for p in walk_forward.windows(len(candles))]
    table = ev.table([space.strategy.resolve(params)], tests)
    return float(np.prod(1 + table[:, 0, _RETURN]) - 1)


def _compound(returns: list[float]) -> float:
    return float(np.prod([1 + x for x in returns]) - 1)


def _summary(
    bars_per_year: float,
    folds: list[Fold],
    stitched: pd.Series | None,
    cash: float,
    spec: SearchSpec,
    space: SearchSpace,
) -> dict[str, Any]:
    assert stitched is not None
    rets = _returns(stitched, cash)
    eq = stitched.to_numpy(np.float64)
    peak = np.maximum.accumulate(np.concatenate(([cash], eq)))[1:]
    sd = float(np.std(rets, ddof=1)) if len(rets) > 1 else 0.0
    trades = [f.oos_trades for f in folds if f.oos_trades is not None and len(f.oos_trades)]
    pnl = np.concatenate([t["pnl"].to_numpy(np.float64) for t in trades]) if trades else np.empty(0)
    chosen = [f for f in folds if f.params is not None]
    trial_sr = np.concatenate([f.candidates.table[:, _SHARPE] for f in folds]) / math.sqrt(bars_per_year)
    n_trials = round(float(np.mean([f.evaluations for f in folds]))) if folds else 0
    stability: Stability | None = parameter_stability(
        [f.params for f in chosen if f.params is not None], {a.name: list(a.values) for a in space.axes}
    )
    wfe = walk_forward_efficiency(
        [float(f.in_sample_metrics["total_return"]) for f in chosen if f.in_sample_metrics],
        [f.in_sample.bars for f in chosen],
        [float(f.out_of_sample_metrics["total_return"]) for f in chosen if f.out_of_sample_metrics],
        [f.out_of_sample.bars for f in chosen],
        bars_per_year,
    )
    return {
        "out_of_sample_return": float(eq[-1] / cash - 1),
        "out_of_sample_max_drawdown": float(np.max(1 - eq / peak)) if len(eq) else 0.0,
        "out_of_sample_sharpe": float(np.mean(rets)) / sd * math.sqrt(bars_per_year) if sd > 1e-15 else 0.0,
        "out_of_sample_trades": len(pnl),
        "out_of_sample_win_rate": float(np.mean(pnl > 0)) if len(pnl) else 0.0,
        "out_of_sample_bars": len(eq),
        "baseline_return": _compound([f.baseline_return for f in folds]),
        "buy_hold_return": _compound([f.buy_hold_return for f in folds]),
        "walk_forward_efficiency": wfe,
        "deflated_sharpe": deflated_sharpe(rets, trial_sr, n_trials),
        "fold_deflated_sharpe": [f.deflated_sharpe for f in folds],
        "stability": asdict(stability) if stability else None,
        "folds_with_trades": sum(f.status == "ok" for f in folds),
        "objectives": list(spec.objectives),
    }


# ------------------------------------------------------------------ pieces as JSON (the AWS fan-out)


def _enc(values: np.ndarray) -> list[Any]:
    """Floats as JSON allows them: a non-finite value (a profit factor with no loss) as its name."""
    return [v if math.isfinite(v) else repr(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _dec(values: list[Any]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


def _cands_doc(c: Candidates) -> dict[str, Any]:
    return {"window": asdict(c.window), "params": c.params, "table": [_enc(r) for r in c.table]}


def _cands_from(doc: Mapping[str, Any]) -> Candidates:
    table = np.asarray([_dec(r) for r in doc["table"]]).reshape(len(doc["table"]), len(STATS))
    return Candidates(Window(**doc["window"]), list(doc["params"]), table)


def piece_doc(piece: Fold | Candidates) -> dict[str, Any]:
    """A fold, or the latest window's candidates, as a JSON document (every float finite or named)."""
    if isinstance(piece, Candidates):
        return {"kind": "latest", "candidates": _cands_doc(piece)}
    doc = piece.to_dict()
    for key in ("in_sample_metrics", "out_of_sample_metrics"):
        if doc[key] is not None:
            doc[key] = dict(zip(doc[key], _enc(np.asarray(list(getattr(piece, key).values()))), strict=True))
    return doc | {
        "kind": "fold",
        "candidates": _cands_doc(piece.candidates),
        "oos_equity": None if piece.oos_equity is None else _enc(piece.oos_equity.to_numpy()),
        "oos_pnl": None if piece.oos_trades is None else _enc(piece.oos_trades["pnl"].to_numpy()),
    }


def piece_from_doc(doc: Mapping[str, Any], candles: pd.DataFrame) -> Fold | Candidates:
    """The inverse of :func:`piece_doc` (the fold's equity re-indexed on ``candles``)."""
    if doc["kind"] == "latest":
        return _cands_from(doc["candidates"])
    test = Window(**doc["out_of_sample"])
    equity = None if doc["oos_equity"] is None else pd.Series(
        _dec(doc["oos_equity"]), index=candles.index[test.start : test.end], name="equity")  # fmt: skip
    metrics = {k: (None if doc[k] is None else {m: float(v) for m, v in doc[k].items()})
               for k in ("in_sample_metrics", "out_of_sample_metrics")}  # fmt: skip
    return Fold(
        index=int(doc["index"]), in_sample=Window(**doc["in_sample"]), out_of_sample=test, times=dict(doc["times"]),
        params=doc["params"], status=doc["status"], reason=doc["reason"],
        in_sample_metrics=metrics["in_sample_metrics"], out_of_sample_metrics=metrics["out_of_sample_metrics"],
        baseline_return=float(doc["baseline_return"]), buy_hold_return=float(doc["buy_hold_return"]),
        deflated_sharpe=doc["deflated_sharpe"], evaluations=int(doc["evaluations"]),
        candidates=_cands_from(doc["candidates"]), oos_equity=equity,
        oos_trades=None if doc["oos_pnl"] is None else pd.DataFrame({"pnl": _dec(doc["oos_pnl"])}),
    )  # fmt: skip
