"""When a walk-forward's parameters may replace the ones being traded: only on out-of-sample
evidence that beats both the current parameters and buy-and-hold, over the same test bars, by a
margin, and survives the multiple-testing guard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradingbot.domain.optimise.space import OptimiseError
from tradingbot.domain.optimise.walkforward import OptimisationResult
from tradingbot.domain.strategies import Params


@dataclass(frozen=True)
class PromotionPolicy:
    """``margin``: how much more total out-of-sample return (a fraction: 0.01 = one percentage
    point) the candidate must make than the current parameters and than buy-and-hold;
    ``min_deflated_sharpe``: the least deflated Sharpe ratio of the stitched out-of-sample returns
    (0 disables the guard); ``min_trades``: out-of-sample trades needed to count as evidence."""

    margin: float = 0.01
    min_deflated_sharpe: float = 0.5
    min_trades: int = 1

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise OptimiseError(f"margin={self.margin}: must not be negative")
        if not 0 <= self.min_deflated_sharpe < 1:
            raise OptimiseError(f"min_deflated_sharpe={self.min_deflated_sharpe}: must be in [0, 1)")
        if self.min_trades < 1:
            raise OptimiseError(f"min_trades={self.min_trades}: must be at least 1")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    evidence: dict[str, Any]


def decide(result: OptimisationResult, policy: PromotionPolicy) -> PromotionDecision:
    """Promote ``result.recommended`` or say why not (never raises for a weak result)."""
    return judge(
        strategy=result.strategy, recommended=result.recommended, recommended_reason=result.recommended_reason,
        baseline=result.baseline, summary=result.summary, period=result.period,
        walk_forward=None if result.walk_forward is None else {
            "folds": result.walk_forward.folds, "window": result.walk_forward.window},
        has_evidence=result.has_evidence, policy=policy,
    )  # fmt: skip


def judge(
    *,
    strategy: str,
    recommended: Params | None,
    recommended_reason: str,
    baseline: Params,
    summary: Mapping[str, Any],
    period: Mapping[str, str],
    walk_forward: Mapping[str, Any] | None,
    has_evidence: bool,
    policy: PromotionPolicy,
) -> PromotionDecision:
    """The promotion rule on a run's stored evidence (what :func:`decide` and ``params promote`` use)."""
    s = summary
    evidence: dict[str, Any] = {
        "strategy": strategy, "params": recommended, "baseline": baseline, "margin": policy.margin,
        "min_deflated_sharpe": policy.min_deflated_sharpe, "min_trades": policy.min_trades,
        "walk_forward": dict(walk_forward) if walk_forward else None, "period": dict(period),
    }  # fmt: skip
    for key in ("out_of_sample_return", "baseline_return", "buy_hold_return", "out_of_sample_trades",
                "out_of_sample_max_drawdown", "deflated_sharpe", "walk_forward_efficiency"):  # fmt: skip
        evidence[key] = s.get(key)

    def no(reason: str) -> PromotionDecision:
        return PromotionDecision(False, f"not promoted: {reason}", evidence)

    if walk_forward is None or not has_evidence or s.get("out_of_sample_return") is None:
        return no("no out-of-sample evidence (run a walk-forward: --walk-forward K)")
    if recommended is None:
        return no(f"no parameters to promote ({recommended_reason})")
    trades = int(s.get("out_of_sample_trades") or 0)
    if trades < policy.min_trades:
        return no(f"{trades} out-of-sample trade(s), {policy.min_trades} needed as evidence")
    oos, base, bh = float(s["out_of_sample_return"]), float(s["baseline_return"]), float(s["buy_hold_return"])
    if oos < base + policy.margin:
        return no(f"out-of-sample return {oos:+.2%} does not beat the current parameters' {base:+.2%} "
                  f"by the margin {policy.margin:.2%}")  # fmt: skip
    if oos < bh + policy.margin:
        return no(f"out-of-sample return {oos:+.2%} does not beat buy-and-hold's {bh:+.2%} by the margin "
                  f"{policy.margin:.2%}")  # fmt: skip
    dsr = s.get("deflated_sharpe")
    if policy.min_deflated_sharpe > 0 and (dsr is None or dsr < policy.min_deflated_sharpe):
        shown = "undefined" if dsr is None else f"{dsr:.3f}"
        return no(f"deflated Sharpe ratio {shown} < {policy.min_deflated_sharpe} (multiple-testing guard)")
    return PromotionDecision(
        True,
        f"promoted: out-of-sample return {oos:+.2%} beats the current parameters ({base:+.2%}) and "
        f"buy-and-hold ({bh:+.2%}) by at least {policy.margin:.2%}",
        evidence,
    )
