"""Genetic search (NSGA-II, optuna's ``NSGAIISampler``) over a strategy's declared space.

Each gene is an index into one parameter's value list (so the declared step and any override list
are respected exactly); a point the strategy's constraint rejects is told to optuna as a failed
trial and never backtested; a point seen before is answered from the cache, not re-run. One
generation is backtested in one compiled grid call. ``budget`` caps the number of distinct
backtests; with one objective its last quarter refines the best points locally (``_refine``).
Why optuna and not deap: docs/adr/0009-genetic-search.md."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tradingbot.domain.optimise.evaluate import STATS, maximise
from tradingbot.domain.optimise.space import OptimiseError, SearchSpace
from tradingbot.domain.strategies import Params

BatchFn = Callable[[list[Params]], np.ndarray]  # rows of STATS, one per combination


@dataclass(frozen=True)
class GeneticConfig:
    """``budget``: distinct backtests at most; ``population``: NSGA-II population per generation;
    ``objectives``: one statistic (single objective) or several (e.g. total_return and max_drawdown:
    the Pareto front); ``seed`` makes a run repeatable."""

    budget: int
    population: int = 20
    objectives: tuple[str, ...] = ("sharpe",)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise OptimiseError(f"budget={self.budget}: must be at least 1 evaluation")
        if self.population < 2:
            raise OptimiseError(f"population={self.population}: must be at least 2")
        if not self.objectives:
            raise OptimiseError("objectives: give at least one statistic")
        for name in self.objectives:
            if name not in STATS:
                raise OptimiseError(f"objective {name!r}: choose one of {', '.join(STATS)}")


def _finite(value: float, maximise_it: bool) -> float:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return -1e12 if maximise_it else 1e12
    return math.copysign(1e12, value)


def genetic_search(space: SearchSpace, evaluate: BatchFn, config: GeneticConfig) -> tuple[list[Params], np.ndarray]:
    """Run NSGA-II until ``config.budget`` distinct combinations are backtested (or the sampler
    keeps proposing only points already seen). Returns the evaluated combinations, in evaluation
    order, and their statistics rows."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions: list[Literal["minimize", "maximize"]] = [
        "maximize" if maximise(o) else "minimize" for o in config.objectives
    ]
    sampler = optuna.samplers.NSGAIISampler(population_size=config.population, seed=config.seed)
    study = optuna.create_study(directions=directions, sampler=sampler)
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        a.name: optuna.distributions.IntDistribution(0, len(a.values) - 1) for a in space.axes
    }
    col = [STATS.index(o) for o in config.objectives]
    seen: dict[tuple[int | float, ...], np.ndarray] = {}
    order: list[Params] = []
    rows: list[np.ndarray] = []
    asked = 0
    limit = max(50 * config.budget, 1000)  # a converged population proposes only known points
    # single objective: the last quarter of the budget climbs the best points' neighbourhoods (_refine)
    ga_budget = config.budget if len(config.objectives) > 1 else max(config.population, config.budget * 3 // 4)
    while len(order) < min(ga_budget, config.budget) and asked < limit:
        batch = [study.ask(dists) for _ in range(config.population)]
        asked += len(batch)
        points = [space.point([t.params[a.name] for a in space.axes]) for t in batch]
        fresh: list[Params] = []
        for p in points:
            key = tuple(p.values())
            if key not in seen and space.violation(p) is None and all(tuple(f.values()) != key for f in fresh):
                fresh.append(p)
        fresh = fresh[: min(ga_budget, config.budget) - len(order)]
        if fresh:
            table = evaluate(fresh)
            for p, row in zip(fresh, table, strict=True):
                seen[tuple(p.values())] = row
                order.append(p)
                rows.append(row)
        for trial, p in zip(batch, points, strict=True):
            row = seen.get(tuple(p.values()))
            if row is None:  # constraint-violating, or over budget: never backtested
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                values = [_finite(float(row[j]), maximise(o)) for j, o in zip(col, config.objectives, strict=True)]
                study.tell(trial, values if len(values) > 1 else values[0])
    _refine(space, evaluate, config, seen, order, rows)
    return order, np.asarray(rows).reshape(len(rows), len(STATS))


def _refine(
    space: SearchSpace,
    evaluate: BatchFn,
    config: GeneticConfig,
    seen: dict[tuple[int | float, ...], np.ndarray],
    order: list[Params],
    rows: list[np.ndarray],
) -> None:
    """Local refinement (the memetic step): the unexplored grid neighbours (one step on any axes)
    of the best points so far, best first, while budget remains. A parameter surface's peak is
    often narrow (2 of 1,000 ema_crossover combinations within 2 % of the best Sharpe on a year of
    BTC bars): crossover finds its hill, this climbs it. Single objective only."""
    if len(config.objectives) != 1:
        return
    j, up = STATS.index(config.objectives[0]), maximise(config.objectives[0])
    index = [{v: i for i, v in enumerate(a.values)} for a in space.axes]
    tried: set[tuple[int | float, ...]] = set()
    while len(order) < config.budget:
        ranked = sorted(range(len(rows)), key=lambda k: _finite(float(rows[k][j]), up), reverse=up)
        batch: list[Params] = []
        for k in ranked:
            centre = tuple(order[k].values())
            if centre in tried:
                continue
            tried.add(centre)
            genes = [index[a][v] for a, v in enumerate(centre)]
            for step in itertools.product((-1, 0, 1), repeat=len(genes)):
                g = [x + d for x, d in zip(genes, step, strict=True)]
                if any(not 0 <= x < len(ax.values) for x, ax in zip(g, space.axes, strict=True)):
                    continue
                p = space.point(g)
                key = tuple(p.values())
                if key not in seen and space.violation(p) is None and all(tuple(b.values()) != key for b in batch):
                    batch.append(p)
            if batch:
                break
        if not batch:
            return  # every neighbour of every point is known
        batch = batch[: config.budget - len(order)]
        for p, row in zip(batch, evaluate(batch), strict=True):
            seen[tuple(p.values())] = row
            order.append(p)
            rows.append(row)


def pareto_front(table: np.ndarray, objectives: Sequence[str]) -> np.ndarray:
    """Indices of the rows no other row dominates on ``objectives`` (each in its own direction)."""
    vals = np.stack([table[:, STATS.index(o)] * (1 if maximise(o) else -1) for o in objectives], axis=1)
    vals = np.nan_to_num(vals, nan=-np.inf)
    keep = []
    for i in range(len(vals)):
        dominated = np.any(np.all(vals >= vals[i], axis=1) & np.any(vals > vals[i], axis=1))
        if not dominated:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)
