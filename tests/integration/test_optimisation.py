"""Optimisation runs stored in real PostgreSQL, promotions per account, the live parameters the
Strategies stage and the win-rate rule use, and the AWS fan-out's plan / fold / aggregate steps
against moto's S3 (the same handler the Distributed Map invokes)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from tradingbot.adapters.history import resolve_candles
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import (
    LiveParameters,
    OptimisationCandidate,
    OptimisationFold,
    OptimizationRun,
    ParameterPromotion,
)
from tradingbot.adapters.persistence.repositories import optimisation as opt_repo
from tradingbot.domain.optimise import PromotionPolicy, SearchSpec, WalkForwardSpec
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.optimise import Job, promote_stored_run, rollback, run_job, store_and_promote
from tradingbot.pipeline.runtime import Runtime

GRID = {"fast": [5, 10, 20], "slow": [30, 50]}
JOB = Job("ema_crossover", "BTCUSDT", "1h")
LENIENT = PromotionPolicy(margin=0.0, min_deflated_sharpe=0.0, min_trades=1)


def _count(s: Any, model: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(model)))


@pytest.fixture
def wf_result() -> tuple[Any, Any]:
    choice = resolve_candles("BTCUSDT", "1h")
    result = run_job(JOB, choice.candles, search=SearchSpec(), walk_forward=WalkForwardSpec(folds=3), ranges=GRID)
    return choice, result


def test_a_run_is_stored_whole_and_promoted_only_on_evidence(
    runtime: Runtime, account: tuple[int, str], wf_result: tuple[Any, Any]
) -> None:
    choice, result = wf_result
    engine = runtime.engine()
    strict = PromotionPolicy(margin=10.0, min_deflated_sharpe=0.0)  # +1000 %: never met
    run_id, outcomes = store_and_promote(
        engine, result, job=JOB, choice=choice, started_at=result_time(), policy=strict, account_ids=[account[0]]
    )
    assert [o.promoted for o in outcomes] == [False]
    assert "does not beat the current parameters'" in outcomes[0].reason
    with session_scope(engine) as s:
        run = s.get(OptimizationRun, run_id)
        assert (
            run is not None and run.status == "succeeded" and run.method == "grid" and run.bars == len(choice.candles)
        )
        assert run.best_params == result.recommended and run.walk_forward["folds"] == 3
        assert run.summary["out_of_sample_return"] == pytest.approx(result.summary["out_of_sample_return"])
        folds = opt_repo.run_folds(s, run_id)
        assert [f.fold for f in folds] == [0, 1, 2] and all(f.out_of_sample is not None for f in folds)
        assert folds[0].params == result.folds[0].params
        assert _count(s, OptimisationCandidate) == 4 * 6  # 3 folds + the latest window
        assert len(opt_repo.run_candidates(s, run_id, latest=True)) == 6
        refusal = s.scalars(select(ParameterPromotion)).one()
        assert not refusal.promoted and refusal.reason == outcomes[0].reason and refusal.run_id == run_id
        assert refusal.evidence["out_of_sample_return"] == pytest.approx(result.summary["out_of_sample_return"])
        assert _count(s, LiveParameters) == 0  # nothing changed: the defaults still trade

    # evidence that beats the current parameters and buy-and-hold: promoted, and live
    s0 = result.summary
    good = dataclasses.replace(result, summary=s0 | {"baseline_return": s0["out_of_sample_return"] - 0.5,
                                                     "buy_hold_return": s0["out_of_sample_return"] - 0.5})  # fmt: skip
    run2, outcomes = store_and_promote(
        engine, good, job=JOB, choice=choice, started_at=result_time(), policy=LENIENT, account_ids=[account[0]]
    )
    assert [o.promoted for o in outcomes] == [True] and outcomes[0].reason.startswith("promoted: ")
    with session_scope(engine) as s:
        live = opt_repo.live_parameters(s, account_id=account[0], strategy="ema_crossover", symbol="BTCUSDT",
                                        timeframe="1h")  # fmt: skip
        assert live is not None and live.params == result.recommended and live.promotion_id == outcomes[0].promotion_id
        # the same run again: already live, stored as a refusal
        again = promote_stored_run(s, run_id=run2, account_id=account[0], policy=LENIENT)
    assert not again.promoted and again.reason == "not promoted: these parameters are already live"

    # rollback: back to the defaults (nothing was live before the promotion), stored as a decision
    with session_scope(engine) as s:
        params, pid = rollback(s, account_id=account[0], job=JOB, reason="test")
    assert params is None
    with session_scope(engine) as s:
        assert _count(s, LiveParameters) == 0
        row = s.get(ParameterPromotion, pid)
        assert (
            row is not None
            and row.action == "rollback"
            and row.evidence["undoes_promotion"] == outcomes[0].promotion_id
        )
        with pytest.raises(StageError, match="no promoted parameters to roll back"):
            rollback(s, account_id=account[0], job=JOB, reason="again")


def result_time() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_nothing_is_half_stored_when_the_promotion_step_fails(
    runtime: Runtime, account: tuple[int, str], wf_result: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    choice, result = wf_result

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("database went away mid-run")

    monkeypatch.setattr(opt_repo, "record_promotion", broken)
    with pytest.raises(RuntimeError, match="mid-run"):
        store_and_promote(runtime.engine(), result, job=JOB, choice=choice, started_at=result_time(), policy=LENIENT,
                          account_ids=[account[0]])  # fmt: skip
    with session_scope(runtime.engine()) as s:
        assert _count(s, OptimizationRun) == 0 and _count(s, OptimisationFold) == 0
        assert _count(s, OptimisationCandidate) == 0


def test_a_search_without_walk_forward_is_stored_but_never_promoted(runtime: Runtime, account: tuple[int, str]) -> None:
    choice = resolve_candles("BTCUSDT", "1h")
    result = run_job(JOB, choice.candles, search=SearchSpec(), walk_forward=None, ranges=GRID)
    run_id, outcomes = store_and_promote(runtime.engine(), result, job=JOB, choice=choice, started_at=result_time(),
                                         policy=LENIENT, account_ids=[account[0]])  # fmt: skip
    assert outcomes[0].reason.startswith("not promoted: no out-of-sample evidence")
    with session_scope(runtime.engine()) as s:
        assert opt_repo.run_folds(s, run_id) == []
        with pytest.raises(StageError, match="run 999 does not exist"):
            promote_stored_run(s, run_id=999, account_id=account[0], policy=LENIENT)


def test_the_fan_out_plan_folds_and_aggregate_store_the_same_run(
    runtime: Runtime, account: tuple[int, str], monkeypatch: pytest.MonkeyPatch, wf_result: tuple[Any, Any]
) -> None:
    """The three steps of statemachines/optimise.asl.json, in its order, through the backtest handler:
    Plan writes the items the Distributed Map's ItemReader reads from S3, each item is one fold,
    Aggregate stores the run; the result equals the in-process walk-forward."""
    import boto3
    from moto import mock_aws

    from tradingbot.entrypoints.lambdas.backtest import handler

    _, whole = wf_result
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("ARTIFACTS_BUCKET", "tb-artifacts")
    monkeypatch.setenv("HISTORY_URI", "s3://tb-artifacts/data/history")  # empty: the packaged samples
    monkeypatch.delenv("OPTIMISE_RESULTS_URI", raising=False)
    schedule = {"source": "schedule", "strategies": ["ema_crossover", "nope_strategy"], "symbols": ["BTCUSDT"],
                "timeframes": ["1h", "4h"], "folds": 3, "window": "rolling", "method": "grid", "grid": GRID,
                "promote": True}  # fmt: skip
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="tb-artifacts")
        with pytest.raises(StageError, match="unknown strategy 'nope_strategy'"):
            handler({"action": "plan", "run_key": "exec-1", "request": schedule}, None)
        schedule["strategies"] = ["ema_crossover"]
        plan = handler({"action": "plan", "run_key": "exec-1", "request": schedule}, None)
        # BTCUSDT 4h has neither history nor a sample: skipped with the reason, not planned
        assert plan["jobs"] == 1 and plan["items"] == 4
        assert "no history for binanceusdm BTCUSDT 4h" in plan["skipped"]["ema_crossover/binanceusdm-BTCUSDT-4h"]
        assert (plan["bucket"], plan["items_key"]) == ("tb-artifacts", "optimise/exec-1/items.json")
        items = json.loads(s3.get_object(Bucket=plan["bucket"], Key=plan["items_key"])["Body"].read())
        assert [i["fold"] for i in items] == [0, 1, 2, 3] and {i["action"] for i in items} == {"fold"}
        # the aggregate before every fold finished stores nothing for that market
        for item in items[:2]:
            handler(item, None)
        early = handler({"action": "aggregate", "run_key": "exec-1"}, None)
        assert early["runs"] == {} and "fold(s) [2, 3] have no result" in early["incomplete"][JOB.slug]
        with session_scope(runtime.engine()) as s:
            assert _count(s, OptimizationRun) == 0
        for item in items[2:]:
            assert handler(item, None)["key"].endswith(f"fold-{item['fold']}.json")
        done = handler({"action": "aggregate", "run_key": "exec-1"}, None)
    stored = done["runs"][JOB.slug]
    assert stored["recommended"] == whole.recommended
    assert [p["account"] for p in stored["promotions"]] == ["test"]  # every enabled account is judged
    with session_scope(runtime.engine()) as s:
        run = s.get(OptimizationRun, stored["run_id"])
        assert run is not None
        assert run.summary["out_of_sample_return"] == pytest.approx(whole.summary["out_of_sample_return"], rel=1e-12)
        assert [f.params for f in opt_repo.run_folds(s, run.id)] == [f.params for f in whole.folds]
        assert _count(s, ParameterPromotion) == 1


@pytest.mark.usefixtures("live_btc")
def test_the_strategies_stage_and_the_win_rate_rule_use_the_promoted_parameters(
    local: Any, account: tuple[int, str]
) -> None:
    from tradingbot.domain.strategies import get_strategy

    from .test_pipeline import alert_body, run_alert

    promoted = {"length": 30, "std": 3.0}
    assert promoted != get_strategy("bollinger").defaults
    with session_scope(local.runtime.engine()) as s:
        row = opt_repo.record_promotion(
            s, account_id=account[0], strategy="bollinger", symbol="BTCUSDT", timeframe="1h", action="manual",
            promoted=True, params=promoted, reason="test", evidence={"test": True},
        )  # fmt: skip
        pid = row.id
    _, decision = run_alert(local, alert_body(account[1], strategy="bollinger"))
    assert decision is not None
    backtested = decision.stages["strategies"]["alert_strategy"]
    assert backtested["params"] == {"length": 30.0, "std": 3.0}
    assert backtested["params_source"] == f"promotion #{pid}"
    rule = next(r for r in decision.stages["validation"]["rules"] if r["rule"] == "backtest_win_rate")
    assert f"bollinger with length=30, std=3 (promotion #{pid})" in rule["reason"]
    # another symbol, or another account, still trades the defaults
    other = run_alert(local, alert_body(account[1], strategy="rsi_ema"))[1]
    assert other is not None and other.stages["strategies"]["alert_strategy"]["params_source"] == "defaults"
