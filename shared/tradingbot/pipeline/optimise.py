"""Parameter optimisation end to end: history -> search or walk-forward (tradingbot.domain.optimise)
-> one stored run (runs, folds, candidates) -> promotion per account -> the live parameters the
Strategies stage and the win-rate rule use.

Entry points: ``tradingbot optimize`` / ``tradingbot params`` (entrypoints/cli) and the backtest
Lambda (one invocation per strategy, or the three steps of statemachines/optimise.asl.json: plan,
one fold per Distributed Map item, aggregate). Not a stage of the trading pipeline.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from tradingbot.adapters.history import CandleChoice, HistoryError, HistoryStore, resolve_candles
from tradingbot.adapters.optimise_results import ResultStore, results_from_settings
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import optimisation as opt_repo
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import OptimiseRequest

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from tradingbot.domain.backtest import BacktestConfig
    from tradingbot.domain.optimise import OptimisationResult, PromotionPolicy, SearchSpec, WalkForwardSpec
    from tradingbot.pipeline.runtime import Runtime
    from tradingbot.settings import OptimiseSection


@dataclass(frozen=True)
class Job:
    """One market and strategy to optimise."""

    strategy: str
    symbol: str
    timeframe: str = "1h"
    exchange: str = "binanceusdm"

    @property
    def slug(self) -> str:
        return f"{self.strategy}/{self.exchange}-{self.symbol}-{self.timeframe}"


def load_job_candles(job: Job, store: HistoryStore | None = None) -> CandleChoice:
    """The job's history (or the labelled packaged sample); :class:`StageError` with the reason."""
    try:
        return resolve_candles(job.symbol, job.timeframe, job.exchange, store=store)
    except HistoryError as exc:
        raise StageError(str(exc)) from None


def run_job(
    job: Job,
    candles: Any,
    *,
    search: SearchSpec,
    walk_forward: WalkForwardSpec | None,
    ranges: Mapping[str, Sequence[Any]] | None = None,
    config: BacktestConfig | None = None,
    baseline: dict[str, int | float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> OptimisationResult:
    """The search / walk-forward itself (pure: tradingbot.domain.optimise)."""
    from tradingbot.domain.optimise import SearchSpace, optimise

    space = SearchSpace.of(job.strategy, ranges=ranges)
    return optimise(
        candles, space, search=search, walk_forward=walk_forward, config=config, baseline=baseline, progress=progress
    )


def run_record(result: OptimisationResult, job: Job, data_label: str, started_at: dt.datetime) -> opt_repo.RunRecord:
    """The rows one run is stored as."""
    from tradingbot.domain.optimise.evaluate import row_metrics

    def cand_rows() -> Any:
        pieces = [(f.index, f.candidates) for f in result.folds] + [(None, result.latest)]
        for fold, cands in pieces:
            for params, row in zip(cands.params, cands.table, strict=True):
                m = row_metrics(row)
                yield {"fold": fold, "params": params, "total_return": m["total_return"],
                       "max_drawdown": m["max_drawdown"], "sharpe": m["sharpe"], "win_rate": m["win_rate"],
                       "trades": int(m["trades"])}  # fmt: skip

    folds = [
        {
            "fold": f.index,
            "in_sample_start": dt.datetime.fromisoformat(f.times["in_sample_start"]),
            "in_sample_end": dt.datetime.fromisoformat(f.times["in_sample_end"]),
            "out_of_sample_start": dt.datetime.fromisoformat(f.times["out_of_sample_start"]),
            "out_of_sample_end": dt.datetime.fromisoformat(f.times["out_of_sample_end"]),
            "params": f.params,
            "status": f.status,
            "reason": f.reason,
            "in_sample": _json_safe(f.in_sample_metrics),
            "out_of_sample": _json_safe(f.out_of_sample_metrics),
            "baseline_return": f.baseline_return,
            "buy_hold_return": f.buy_hold_return,
            "deflated_sharpe": f.deflated_sharpe,
            "evaluations": f.evaluations,
        }
        for f in result.folds
    ]
    objective = ",".join(result.search.objectives)
    best = None
    if result.recommended is not None:
        i = result.latest.params.index(result.recommended)
        best = float(row_metrics(result.latest.table[i])[result.search.objectives[0]])
    return opt_repo.RunRecord(
        strategy=job.strategy, symbol=job.symbol, timeframe=job.timeframe, exchange=job.exchange,
        method=result.search.method, objective=objective, search_space=result.space,
        walk_forward=asdict(result.walk_forward) if result.walk_forward else None, data_label=data_label,
        bars=result.bars, evaluations=result.evaluations, best_params=result.recommended, best_score=best,
        summary=(_json_safe(result.summary) or {}) | {"baseline_params": result.baseline,
                 "period_start": result.period["start"], "period_end": result.period["end"]},
        started_at=started_at, folds=folds, candidates=cand_rows(),
    )  # fmt: skip


def _json_safe(d: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """JSON (and so jsonb) has no inf / nan: they are stored as null."""
    if d is None:
        return None

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in d.items()}


def policy_from(section: OptimiseSection) -> PromotionPolicy:
    from tradingbot.domain.optimise import PromotionPolicy

    return PromotionPolicy(
        margin=section.promotion_margin, min_deflated_sharpe=section.min_deflated_sharpe,
        min_trades=section.min_oos_trades,
    )  # fmt: skip


@dataclass(frozen=True)
class PromotionOutcome:
    account: str
    promoted: bool
    reason: str
    promotion_id: int


def current_params(session: Session, *, account_id: int, job: Job) -> tuple[dict[str, Any] | None, str]:
    """The account's live parameters for the job's market and where they come from."""
    live = opt_repo.live_parameters(
        session, account_id=account_id, strategy=job.strategy, symbol=job.symbol, timeframe=job.timeframe
    )
    if live is None:
        return None, "defaults"
    return dict(live.params), f"promotion #{live.promotion_id}"


def promote_run(
    session: Session,
    result: OptimisationResult,
    *,
    run_id: int,
    job: Job,
    candles: Any,
    policy: PromotionPolicy,
    account_ids: Sequence[int],
    action: str = "promote",
) -> list[PromotionOutcome]:
    """Judge the run for each account against that account's current parameters (run through the
    same out-of-sample windows) and buy-and-hold; store every decision, promoted or not."""
    from tradingbot.domain.optimise import SearchSpace, decide
    from tradingbot.domain.optimise.walkforward import fixed_params_return

    outcomes = []
    for account_id in account_ids:
        account = repo.account_by_id(session, account_id)
        if account is None:
            raise StageError(f"account {account_id} does not exist")
        current, source = current_params(session, account_id=account_id, job=job)
        judged = result
        if current is not None and result.walk_forward is not None and current != result.baseline:
            space = SearchSpace.of(job.strategy)
            base = fixed_params_return(candles, space, result.walk_forward, current, result.config)
            judged = replace(result, baseline=current, summary=result.summary | {"baseline_return": base})
        decision = decide(judged, policy)
        reason, promoted = decision.reason, decision.promote
        if current is not None and current == result.recommended:
            promoted, reason = False, "not promoted: these parameters are already live"
        evidence = _json_safe(decision.evidence | {"run_id": run_id, "baseline_source": source}) or {}
        row = opt_repo.record_promotion(
            session, account_id=account_id, strategy=job.strategy, symbol=job.symbol, timeframe=job.timeframe,
            action=action, promoted=promoted, params=result.recommended, reason=reason, evidence=evidence,
            run_id=run_id,
        )  # fmt: skip
        outcomes.append(PromotionOutcome(account.name, promoted, reason, row.id))
    return outcomes


def store_and_promote(
    engine: Engine,
    result: OptimisationResult,
    *,
    job: Job,
    choice: CandleChoice,
    started_at: dt.datetime,
    policy: PromotionPolicy | None,
    account_ids: Sequence[int] | None = None,
) -> tuple[int, list[PromotionOutcome]]:
    """Store the run (folds, candidates) and, with a ``policy``, its promotion decisions: one
    transaction, so a failure stores nothing. ``account_ids`` None: every enabled account."""
    with session_scope(engine) as s:
        run_id = opt_repo.store_run(s, run_record(result, job, choice.label, started_at))
        outcomes: list[PromotionOutcome] = []
        if policy is not None:
            ids = account_ids if account_ids is not None else [a.id for a in repo.list_accounts(s) if a.enabled]
            outcomes = promote_run(
                s, result, run_id=run_id, job=job, candles=choice.candles, policy=policy, account_ids=ids
            )
    return run_id, outcomes


# ------------------------------------------------------------------ rollback and manual promotion


def rollback(session: Session, *, account_id: int, job: Job, reason: str) -> tuple[dict[str, Any] | None, int]:
    """Back to the parameters in force before the live ones were set (``None``: the defaults), stored
    as a ``rollback`` promotion naming the promotion it undoes (a second rollback redoes it).
    :class:`StageError` when nothing is live for the market."""
    live = opt_repo.live_parameters(
        session, account_id=account_id, strategy=job.strategy, symbol=job.symbol, timeframe=job.timeframe
    )
    if live is None:
        raise StageError(
            f"{job.strategy} {job.symbol} {job.timeframe}: no promoted parameters to roll back (the defaults are live)"
        )
    undone = opt_repo.promotion_by_id(session, live.promotion_id)
    previous = dict(undone.previous_params) if undone is not None and undone.previous_params else None
    evidence = {"undoes_promotion": live.promotion_id, "undone_params": dict(live.params)}
    row = opt_repo.record_promotion(
        session, account_id=account_id, strategy=job.strategy, symbol=job.symbol, timeframe=job.timeframe,
        action="rollback", promoted=True, params=previous,
        reason=f"rolled back to {'the defaults' if previous is None else previous}: {reason}", evidence=evidence,
    )  # fmt: skip
    return previous, row.id


def promote_stored_run(
    session: Session,
    *,
    run_id: int,
    account_id: int,
    policy: PromotionPolicy,
    store: HistoryStore | None = None,
) -> PromotionOutcome:
    """``tradingbot params promote``: judge a stored run for one account, on the run's stored
    out-of-sample evidence (the account's current parameters re-run on the same test bars when they
    are not the run's baseline); the decision is stored either way."""
    import numpy as np

    from tradingbot.domain.optimise import judge
    from tradingbot.domain.optimise.evaluate import Evaluator, Window

    run = opt_repo.get_run(session, run_id)
    if run is None:
        raise StageError(f"run {run_id} does not exist (tradingbot optimize ... --store prints its id)")
    account = repo.account_by_id(session, account_id)
    if account is None:
        raise StageError(f"account {account_id} does not exist")
    job = Job(run.strategy, run.symbol, run.timeframe, run.exchange or "binanceusdm")
    folds = run_folds(session, run_id)
    summary = dict(run.summary or {})
    baseline = summary.get("baseline_params") or {}
    current, source = current_params(session, account_id=account_id, job=job)
    if current is not None and folds and current != baseline:
        candles = load_job_candles(job, store).candles
        idx = candles.index
        windows = []
        for f in folds:
            a, b = idx.searchsorted(f.out_of_sample_start), idx.searchsorted(f.out_of_sample_end, side="right")
            if b - a < 2:
                raise StageError(f"run {run_id} fold {f.fold}: its test bars are no longer in the history")
            windows.append(Window(int(a), int(b)))
        table = Evaluator(candles, job.strategy).table([current], windows)
        summary["baseline_return"] = float(np.prod(1 + table[:, 0, 1]) - 1)
    decision = judge(
        strategy=run.strategy, recommended=run.best_params, recommended_reason="the run's recommendation",
        baseline=current or baseline, summary=summary,
        period={"start": str(summary.get("period_start", "")), "end": str(summary.get("period_end", ""))},
        walk_forward=run.walk_forward, has_evidence=any(f.out_of_sample is not None for f in folds), policy=policy,
    )  # fmt: skip
    promoted, reason = decision.promote, decision.reason
    if current is not None and current == run.best_params:
        promoted, reason = False, "not promoted: these parameters are already live"
    evidence = _json_safe(decision.evidence | {"run_id": run_id, "baseline_source": source}) or {}
    row = opt_repo.record_promotion(
        session, account_id=account_id, strategy=job.strategy, symbol=job.symbol, timeframe=job.timeframe,
        action="manual", promoted=promoted, params=run.best_params, reason=reason, evidence=evidence, run_id=run_id,
    )  # fmt: skip
    return PromotionOutcome(account.name, promoted, reason, row.id)


def run_folds(session: Session, run_id: int) -> Sequence[Any]:
    return opt_repo.run_folds(session, run_id)


# ------------------------------------------------------------------ the backtest Lambda


def _specs(req: OptimiseRequest) -> tuple[SearchSpec, WalkForwardSpec | None]:
    from tradingbot.domain.optimise import OptimiseError, SearchSpec, WalkForwardSpec

    try:
        search = SearchSpec(method=req.method, objectives=tuple(req.objectives or [req.sort_by]), seed=req.seed)
        wf = WalkForwardSpec(folds=req.folds, window=req.window) if req.folds else None
    except OptimiseError as exc:
        raise StageError(str(exc)) from None
    return search, wf


GENETIC_FALLBACK_BUDGET = 300  # per window; optuna's NSGA-II ask grows with the trials told (docs/optimisation.md)


def _search_for(job: Job, req: OptimiseRequest, search: SearchSpec) -> SearchSpec:
    """A grid larger than ``max_combinations`` (macd_stochastic's coarse grid has 5^7 points) is
    searched genetically instead (``GENETIC_FALLBACK_BUDGET`` evaluations per window); the stored run's ``method``
    says so. Every step of the fan-out decides the same way from the same request."""
    from tradingbot.domain.optimise import SearchSpace

    if search.method == "grid" and SearchSpace.of(job.strategy, ranges=_coarse(job, req)).size > req.max_combinations:
        return replace(search, method="genetic", budget=min(req.max_combinations, GENETIC_FALLBACK_BUDGET))
    return search


def _jobs(req: OptimiseRequest) -> list[Job]:
    from tradingbot.domain.strategies import REGISTRY

    strategies = req.strategies or ([req.strategy] if req.strategy else list(REGISTRY))
    for name in strategies:
        if name not in REGISTRY:
            raise StageError(f"unknown strategy {name!r}; valid: {', '.join(sorted(REGISTRY))}")
    symbols = req.symbols or [req.symbol]
    timeframes = req.timeframes or [req.timeframe]
    return [Job(st, sy, tf, req.exchange) for st in strategies for sy in symbols for tf in timeframes]


def _coarse(job: Job, req: OptimiseRequest) -> dict[str, list[Any]] | None:
    """The event's grid, else (on a schedule) every 4th value of each declared range."""
    if req.grid:
        return req.grid
    from tradingbot.domain.strategies import get_strategy

    return {p.name: p.values()[:: max(1, len(p.values()) // 4)] for p in get_strategy(job.strategy).params}


def optimise(
    req: OptimiseRequest,
    store: HistoryStore | None = None,
    rt: Runtime | None = None,
    results: ResultStore | None = None,
) -> dict[str, Any]:
    """The backtest Lambda's work for one event (see :class:`OptimiseRequest`)."""
    from tradingbot.domain.optimise import OptimiseError

    try:
        if req.action == "plan":
            return _plan(req, store, results or results_from_settings())
        if req.action == "fold":
            return _fold(req, store, results or results_from_settings())
        if req.action == "aggregate":
            return _aggregate(req, store, results or results_from_settings(), _runtime(rt))
        return _run(req, store, _runtime(rt) if req.promote or req.store else None)
    except OptimiseError as exc:
        raise StageError(str(exc)) from None


def _runtime(rt: Runtime | None) -> Runtime:
    if rt is not None:
        return rt
    from tradingbot.pipeline.runtime import get_runtime

    return get_runtime()


def _run(req: OptimiseRequest, store: HistoryStore | None, rt: Runtime | None) -> dict[str, Any]:
    search, wf = _specs(req)
    jobs = _jobs(req)
    out: dict[str, Any] = {}
    choice = None
    for job in jobs:
        choice = load_job_candles(job, store)
        started = dt.datetime.now(dt.UTC)
        result = run_job(
            job, choice.candles, search=_search_for(job, req, search), walk_forward=wf, ranges=_coarse(job, req)
        )
        entry: dict[str, Any] = {
            "combinations": len(result.latest.params), "recommended": result.recommended,
            "summary": _json_safe(result.summary), "evaluations": result.evaluations,
            "folds": [f.to_dict() for f in result.folds],
        }  # fmt: skip
        if rt is not None:
            policy = policy_from(rt.config.optimise) if req.promote else None
            run_id, outcomes = store_and_promote(
                rt.engine(), result, job=job, choice=choice, started_at=started, policy=policy
            )
            entry |= {"run_id": run_id, "promotions": [asdict(o) for o in outcomes]}
        one_market = len({(j.symbol, j.timeframe) for j in jobs}) == 1
        out[job.strategy if one_market else job.slug] = entry
    assert choice is not None
    return {"data": choice.label, "data_kind": choice.kind, "bars": len(choice.candles), "results": out}


def _plan(req: OptimiseRequest, store: HistoryStore | None, results: ResultStore) -> dict[str, Any]:
    """One item per job x fold (fold == folds: the latest window), written as a JSON array for the
    Distributed Map's ItemReader; jobs whose history is missing are reported, not planned."""
    if not req.run_key:
        raise StageError("run_key: the plan step needs the execution's name")
    _, wf = _specs(req)
    folds = wf.folds if wf else 0
    items: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    jobs = []
    for job in _jobs(req):
        try:
            choice = load_job_candles(job, store)
            if wf is not None:
                wf.windows(len(choice.candles))  # a window longer than the history fails here, not in a fold
        except StageError as exc:
            skipped[job.slug] = str(exc)
            continue
        except Exception as exc:
            from tradingbot.domain.optimise import OptimiseError

            if not isinstance(exc, OptimiseError):
                raise
            skipped[job.slug] = str(exc)
            continue
        jobs.append(asdict(job) | {"data": choice.label})
        base = req.model_dump(include={"method", "objectives", "sort_by", "folds", "window", "seed", "grid"})
        for k in range(folds + 1):
            items.append(base | asdict(job) | {"action": "fold", "run_key": req.run_key, "fold": k})
    results.put(f"{req.run_key}/plan.json", {"request": req.model_dump(), "jobs": jobs, "skipped": skipped})
    results.put(f"{req.run_key}/items.json", items)
    bucket, key = results.bucket_key(f"{req.run_key}/items.json") if results.is_s3 else ("", "")
    return {"run_key": req.run_key, "items": len(items), "jobs": len(jobs), "skipped": skipped,
            "bucket": bucket, "items_key": key}  # fmt: skip


def _fold(req: OptimiseRequest, store: HistoryStore | None, results: ResultStore) -> dict[str, Any]:
    from tradingbot.domain.optimise import SearchSpace
    from tradingbot.domain.optimise.walkforward import optimise_fold, piece_doc

    if not req.run_key or req.fold is None or not req.strategy:
        raise StageError("a fold item needs run_key, strategy and fold")
    search, wf = _specs(req)
    if wf is None:
        raise StageError("folds: a fold item needs a walk-forward (folds >= 1)")
    job = Job(req.strategy, req.symbol, req.timeframe, req.exchange)
    choice = load_job_candles(job, store)
    space = SearchSpace.of(job.strategy, ranges=_coarse(job, req))
    piece = optimise_fold(choice.candles, space, index=req.fold, walk_forward=wf, search=_search_for(job, req, search))
    key = f"{req.run_key}/{job.slug}/fold-{req.fold}.json"
    results.put(key, piece_doc(piece))
    return {"key": key, "fold": req.fold}  # small: the Map's results stay far under 256 KiB


def _aggregate(req: OptimiseRequest, store: HistoryStore | None, results: ResultStore, rt: Runtime) -> dict[str, Any]:
    """Every planned job whose folds are all present becomes one stored run, promoted per account;
    a job with a missing fold is reported and stores nothing."""
    from tradingbot.domain.optimise import SearchSpace
    from tradingbot.domain.optimise.evaluate import Evaluator
    from tradingbot.domain.optimise.walkforward import Candidates, Fold, assemble, piece_from_doc

    if not req.run_key:
        raise StageError("run_key: the aggregate step needs the execution's name")
    plan = results.get(f"{req.run_key}/plan.json")
    if plan is None:
        raise StageError(f"no plan for run {req.run_key!r} in {results.location(req.run_key)}")
    preq = OptimiseRequest.model_validate(plan["request"])
    search, wf = _specs(preq)
    assert wf is not None
    out: dict[str, Any] = {"skipped": plan.get("skipped", {}), "runs": {}, "incomplete": {}}
    policy = policy_from(rt.config.optimise) if preq.promote else None
    for j in plan["jobs"]:
        job = Job(j["strategy"], j["symbol"], j["timeframe"], j["exchange"])
        docs = [results.get(f"{req.run_key}/{job.slug}/fold-{k}.json") for k in range(wf.folds + 1)]
        missing = [k for k, d in enumerate(docs) if d is None]
        if missing:
            out["incomplete"][job.slug] = f"fold(s) {missing} have no result: nothing stored"
            continue
        choice = load_job_candles(job, store)
        pieces = [piece_from_doc(d, choice.candles) for d in docs if d is not None]
        folds = [p for p in pieces[:-1] if isinstance(p, Fold)]
        latest = pieces[-1]
        assert isinstance(latest, Candidates)
        space = SearchSpace.of(job.strategy, ranges=_coarse(job, preq))
        ev = Evaluator(choice.candles, space.strategy)
        evaluations = sum(f.evaluations for f in folds) + len(latest.params)
        spec = _search_for(job, preq, search)
        result = assemble(
            choice.candles,
            space,
            spec,
            wf,
            ev.config,
            space.strategy.defaults,
            folds,
            latest,
            evaluations,
            ev.bars_per_year,
        )
        run_id, outcomes = store_and_promote(
            rt.engine(), result, job=job, choice=choice, started_at=dt.datetime.now(dt.UTC), policy=policy
        )
        out["runs"][job.slug] = {"run_id": run_id, "recommended": result.recommended,
                                 "promotions": [asdict(o) for o in outcomes]}  # fmt: skip
    return out
