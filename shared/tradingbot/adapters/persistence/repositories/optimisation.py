"""Optimisation runs (with their folds and candidates), promotion decisions and the live
parameters they set.

Repository functions: the only SQL the product runs. Each takes a Session inside a transaction
(``session_scope``) and never commits itself: a run, its folds and its candidates are written in
the caller's one transaction, so a failure leaves nothing half-stored; a promotion and the live
parameters it sets are one unit too.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    LiveParameters,
    OptimisationCandidate,
    OptimisationFold,
    OptimizationRun,
    ParameterPromotion,
)


@dataclass(frozen=True)
class RunRecord:
    """What a finished run is stored as (built by the pipeline from a domain result)."""

    strategy: str
    symbol: str
    timeframe: str
    exchange: str
    method: str
    objective: str
    search_space: dict[str, Any]
    walk_forward: dict[str, Any] | None
    data_label: str
    bars: int
    evaluations: int
    best_params: dict[str, Any] | None
    best_score: float | None
    summary: dict[str, Any]
    started_at: dt.datetime
    folds: Sequence[Mapping[str, Any]]  # OptimisationFold columns (but run_id)
    candidates: Iterable[Mapping[str, Any]]  # OptimisationCandidate columns (but run_id)


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def store_run(session: Session, record: RunRecord, *, batch: int = 5000) -> int:
    """Insert the run, its folds and its candidates (in batches); returns the run's id."""
    run = OptimizationRun(
        strategy=record.strategy, symbol=record.symbol, timeframe=record.timeframe, exchange=record.exchange,
        method=record.method, objective=record.objective, search_space=record.search_space,
        walk_forward=record.walk_forward, data_label=record.data_label, bars=record.bars,
        evaluations=record.evaluations, best_params=record.best_params, best_score=_finite(record.best_score),
        summary=record.summary, status="succeeded", started_at=record.started_at,
        finished_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    session.add(run)
    session.flush()
    if record.folds:
        session.execute(insert(OptimisationFold), [dict(f) | {"run_id": run.id} for f in record.folds])
    rows: list[dict[str, Any]] = []
    for c in record.candidates:
        rows.append({k: _finite(v) if k != "params" else v for k, v in c.items()} | {"run_id": run.id})
        if len(rows) >= batch:
            session.execute(insert(OptimisationCandidate), rows)
            rows = []
    if rows:
        session.execute(insert(OptimisationCandidate), rows)
    return run.id


def get_run(session: Session, run_id: int) -> OptimizationRun | None:
    return session.get(OptimizationRun, run_id)


def run_folds(session: Session, run_id: int) -> Sequence[OptimisationFold]:
    return session.scalars(
        select(OptimisationFold).where(OptimisationFold.run_id == run_id).order_by(OptimisationFold.fold)
    ).all()


def run_candidates(
    session: Session, run_id: int, *, fold: int | None = None, latest: bool = False
) -> Sequence[OptimisationCandidate]:
    """Candidates of one fold (``latest``: the final window's, ``fold`` NULL), else all of them."""
    stmt = select(OptimisationCandidate).where(OptimisationCandidate.run_id == run_id)
    if latest:
        stmt = stmt.where(OptimisationCandidate.fold.is_(None))
    elif fold is not None:
        stmt = stmt.where(OptimisationCandidate.fold == fold)
    return session.scalars(stmt.order_by(OptimisationCandidate.id)).all()


def recent_runs(session: Session, *, strategy: str | None = None, limit: int = 20) -> Sequence[OptimizationRun]:
    stmt = select(OptimizationRun)
    if strategy:
        stmt = stmt.where(OptimizationRun.strategy == strategy)
    return session.scalars(stmt.order_by(OptimizationRun.id.desc()).limit(limit)).all()


# ------------------------------------------------------------------ live parameters and promotions


def live_parameters(
    session: Session, *, account_id: int, strategy: str, symbol: str, timeframe: str
) -> LiveParameters | None:
    return session.get(LiveParameters, (account_id, strategy, symbol, timeframe))


def list_live_parameters(session: Session, *, account_id: int | None = None) -> Sequence[LiveParameters]:
    stmt = select(LiveParameters)
    if account_id is not None:
        stmt = stmt.where(LiveParameters.account_id == account_id)
    return session.scalars(
        stmt.order_by(
            LiveParameters.account_id, LiveParameters.strategy, LiveParameters.symbol, LiveParameters.timeframe
        )
    ).all()


def record_promotion(
    session: Session,
    *,
    account_id: int,
    strategy: str,
    symbol: str,
    timeframe: str,
    action: str,
    promoted: bool,
    params: dict[str, Any] | None,
    reason: str,
    evidence: dict[str, Any],
    run_id: int | None = None,
) -> ParameterPromotion:
    """Store one decision; when ``promoted``, make ``params`` the live parameters (``None``: the
    strategy's defaults) in the same transaction. The previous live parameters are kept on the row,
    which is what a rollback returns to."""
    current = live_parameters(session, account_id=account_id, strategy=strategy, symbol=symbol, timeframe=timeframe)
    row = ParameterPromotion(
        account_id=account_id, strategy=strategy, symbol=symbol, timeframe=timeframe, run_id=run_id, action=action,
        promoted=promoted, params=params, previous_params=dict(current.params) if current else None, reason=reason,
        evidence=evidence,
    )  # fmt: skip
    session.add(row)
    session.flush()
    if promoted and params is None:  # back to the strategy's defaults (a rollback past the first promotion)
        clear_live_parameters(session, account_id=account_id, strategy=strategy, symbol=symbol, timeframe=timeframe)
    elif promoted:
        stmt = pg_insert(LiveParameters).values(
            account_id=account_id, strategy=strategy, symbol=symbol, timeframe=timeframe, params=params,
            promotion_id=row.id,
        )  # fmt: skip
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["account_id", "strategy", "symbol", "timeframe"],
                set_={"params": stmt.excluded.params, "promotion_id": row.id, "updated_at": dt.datetime.now(dt.UTC)},
            )
        )
    return row


def clear_live_parameters(session: Session, *, account_id: int, strategy: str, symbol: str, timeframe: str) -> None:
    """Back to the strategy's defaults."""
    session.execute(
        delete(LiveParameters).where(
            LiveParameters.account_id == account_id,
            LiveParameters.strategy == strategy,
            LiveParameters.symbol == symbol,
            LiveParameters.timeframe == timeframe,
        )
    )


def promotion_by_id(session: Session, promotion_id: int) -> ParameterPromotion | None:
    return session.get(ParameterPromotion, promotion_id)


def promotions(
    session: Session, *, account_id: int, strategy: str | None = None, symbol: str | None = None,
    timeframe: str | None = None, limit: int = 50,
) -> Sequence[ParameterPromotion]:  # fmt: skip
    """Newest first."""
    stmt = select(ParameterPromotion).where(ParameterPromotion.account_id == account_id)
    if strategy:
        stmt = stmt.where(ParameterPromotion.strategy == strategy)
    if symbol:
        stmt = stmt.where(ParameterPromotion.symbol == symbol)
    if timeframe:
        stmt = stmt.where(ParameterPromotion.timeframe == timeframe)
    return session.scalars(stmt.order_by(ParameterPromotion.id.desc()).limit(limit)).all()
