"""Trade validation: quality rules and risk limits, each with a verdict and a reason.

Every rule runs (no short-circuit) so the decision record shows the whole picture; the trade goes
ahead only when no rule failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

Verdict = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class RuleResult:
    rule: str
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class RiskState:
    """What the risk rules need to know about the account right now."""

    kill_switch: str | None  # reason if engaged
    open_positions: int
    has_position_in_symbol: bool
    # today's (UTC) realised PnL net of fees and funding, from the venue's records (the accounting
    # sync: Binance userTrades / OKX fills / the paper ledger, funding from income / bills)
    realized_pnl_today: Decimal
    max_position_usd: Decimal
    max_leverage: int
    max_daily_loss_usd: Decimal
    max_open_positions: int
    max_drawdown_pct: Decimal = Decimal(20)
    # the equity series (balance snapshots of the accounting sync): its peak and its latest point;
    # None = no snapshot yet
    equity_peak: Decimal | None = None
    equity_now: Decimal | None = None
    # when the PnL and equity above were last synced from the venue (None: never)
    accounting_synced_at: str | None = None


@dataclass(frozen=True)
class ValidationInput:
    direction: Literal["long", "short", "flat"]
    symbol: str
    price: Decimal
    quantity: Decimal | None
    leverage: int
    stop_loss: Decimal | None
    take_profit: Decimal | None
    predict: dict[str, Any]
    ensemble: dict[str, Any]
    strategy: dict[str, Any]
    live_price: Decimal | None = None  # the feed's last (or mark) price; None: no fresh price
    live_price_source: str = "the market feed"  # e.g. "binanceusdm last price"


@dataclass(frozen=True)
class ValidationConfig:
    symbols: set[str]
    min_ai_confidence: float = 70.0
    min_win_rate: float = 0.55
    min_reward_risk: float = 1.5
    when_model_unavailable: Literal["skip", "reject"] = "skip"
    when_ai_unavailable: Literal["skip", "reject"] = "skip"
    max_price_deviation_pct: float = 1.0


@dataclass
class ValidationReport:
    action: Literal["trade", "reject"]
    reason: str | None
    rules: list[RuleResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "rules": [asdict(r) for r in self.rules]}


def _unavailable(policy: str, rule: str, why: str) -> RuleResult:
    if policy == "reject":
        return RuleResult(rule, "fail", f"{why}, and this rule is configured to reject when unavailable")
    return RuleResult(rule, "skip", f"{why} (configured to skip)")


def rule_kill_switch(risk: RiskState) -> RuleResult:
    if risk.kill_switch:
        return RuleResult("kill_switch", "fail", f"kill switch engaged: {risk.kill_switch}")
    return RuleResult("kill_switch", "pass", "not engaged")


def rule_symbol(v: ValidationInput, cfg: ValidationConfig) -> RuleResult:
    if v.symbol not in cfg.symbols:
        return RuleResult("symbol_allowlist", "fail", f"{v.symbol} is not allowed ({', '.join(sorted(cfg.symbols))})")
    return RuleResult("symbol_allowlist", "pass", f"{v.symbol} allowed")


def rule_ai(v: ValidationInput, cfg: ValidationConfig) -> RuleResult:
    e = v.ensemble
    if e.get("voters_configured", 0) == 0:
        return _unavailable(cfg.when_ai_unavailable, "ai_confidence", "no AI voters configured")
    if e.get("outcome") != "agreement":
        return RuleResult(
            "ai_confidence", "fail", f"no 2-of-3 agreement ({e.get('outcome')}, counts {e.get('counts')})"
        )
    if str(e.get("signal", "")).lower() != v.direction:
        return RuleResult("ai_confidence", "fail", f"AI ensemble says {e.get('signal')}, the alert says {v.direction}")
    conf = float(e.get("confidence") or 0.0)
    if conf <= cfg.min_ai_confidence:
        return RuleResult("ai_confidence", "fail", f"AI confidence {conf:.1f} % <= {cfg.min_ai_confidence:.1f} %")
    return RuleResult("ai_confidence", "pass", f"{e.get('signal')} at {conf:.1f} % > {cfg.min_ai_confidence:.1f} %")


def rule_lstm(v: ValidationInput, cfg: ValidationConfig) -> RuleResult:
    p = v.predict
    if p.get("model") == "unavailable":
        return _unavailable(cfg.when_model_unavailable, "lstm_agrees", f"model unavailable: {p.get('reason')}")
    direction = str(p.get("direction", "")).lower()
    if direction != v.direction:
        return RuleResult(
            "lstm_agrees", "fail", f"LSTM predicts {direction or 'nothing'}, the alert says {v.direction}"
        )
    return RuleResult("lstm_agrees", "pass", f"LSTM ({p.get('model')}) predicts {direction}")


def rule_win_rate(v: ValidationInput, cfg: ValidationConfig) -> RuleResult:
    s = v.strategy
    if not s.get("known"):
        return RuleResult("backtest_win_rate", "fail", f"strategy {s.get('name')!r} has no backtest (not registered)")
    rate = float(s.get("win_rate", 0.0))
    # issue 18: the backtest ran with the account's promoted parameters when there are any; say which
    params, source = s.get("params") or {}, s.get("params_source") or "defaults"
    used = f" with {', '.join(f'{k}={v:g}' for k, v in params.items())} ({source})" if source != "defaults" else ""
    if s.get("trades", 0) == 0 or rate <= cfg.min_win_rate:
        return RuleResult(
            "backtest_win_rate", "fail",
            f"{s.get('name')}{used} backtested win rate {rate:.1%} over {s.get('trades')} trades "
            f"<= {cfg.min_win_rate:.0%}",
        )  # fmt: skip
    return RuleResult(
        "backtest_win_rate", "pass", f"{s.get('name')}{used} win rate {rate:.1%} > {cfg.min_win_rate:.0%}"
    )


def rule_reward_risk(v: ValidationInput, cfg: ValidationConfig) -> RuleResult:
    if v.stop_loss is None or v.take_profit is None:
        return RuleResult("reward_risk", "fail", "no stop-loss / take-profit to measure reward against risk")
    sign = Decimal(1) if v.direction == "long" else Decimal(-1)
    risk = (v.price - v.stop_loss) * sign
    reward = (v.take_profit - v.price) * sign
    if risk <= 0 or reward <= 0:
        return RuleResult(
            "reward_risk", "fail", f"stop {v.stop_loss} / target {v.take_profit} are on the wrong side of {v.price}"
        )
    ratio = float(reward / risk)
    if ratio <= cfg.min_reward_risk:
        return RuleResult("reward_risk", "fail", f"reward/risk {ratio:.2f} <= {cfg.min_reward_risk}")
    return RuleResult("reward_risk", "pass", f"reward/risk {ratio:.2f} > {cfg.min_reward_risk}")


def rule_price_deviation(v: ValidationInput, cfg: ValidationConfig) -> RuleResult:
    """The alert's price against the live market: an alert far from it is stale, mistyped or for
    another instrument, and its stop and target would be measured from the wrong place."""
    if v.live_price is None or v.live_price <= 0:
        return RuleResult("price_deviation", "fail", f"no live price for {v.symbol} from {v.live_price_source}")
    deviation = float(abs(v.price - v.live_price) / v.live_price * 100)
    where = f"alert price {v.price} vs {v.live_price_source} {v.live_price}: {deviation:.2f} %"
    if deviation > cfg.max_price_deviation_pct:
        return RuleResult("price_deviation", "fail", f"{where} > {cfg.max_price_deviation_pct:g} %")
    return RuleResult("price_deviation", "pass", f"{where} <= {cfg.max_price_deviation_pct:g} %")


def rule_leverage(v: ValidationInput, risk: RiskState) -> RuleResult:
    if v.leverage > risk.max_leverage:
        return RuleResult("max_leverage", "fail", f"leverage {v.leverage}x > account limit {risk.max_leverage}x")
    return RuleResult("max_leverage", "pass", f"{v.leverage}x <= {risk.max_leverage}x")


def rule_notional(v: ValidationInput, risk: RiskState) -> RuleResult:
    if v.quantity is None:
        return RuleResult(
            "max_position_notional", "pass", f"sized by the account's risk settings (cap {risk.max_position_usd} USDT)"
        )
    notional = v.quantity * v.price
    if notional > risk.max_position_usd:
        return RuleResult(
            "max_position_notional", "fail", f"notional {notional:.2f} > limit {risk.max_position_usd} USDT"
        )
    return RuleResult("max_position_notional", "pass", f"notional {notional:.2f} <= {risk.max_position_usd} USDT")


def rule_open_positions(risk: RiskState) -> RuleResult:
    if not risk.has_position_in_symbol and risk.open_positions >= risk.max_open_positions:
        return RuleResult(
            "max_open_positions", "fail", f"{risk.open_positions} open >= limit {risk.max_open_positions}"
        )
    return RuleResult("max_open_positions", "pass", f"{risk.open_positions} open, limit {risk.max_open_positions}")


def _plain(value: Decimal) -> str:
    """100.000000000000000000 (a numeric(38, 18) column) as 100; 2.5 as 2.5."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _synced(risk: RiskState) -> str:
    return f"venue records synced {risk.accounting_synced_at}" if risk.accounting_synced_at else "never synced"


def rule_daily_loss(risk: RiskState) -> RuleResult:
    """Today's (UTC) realised PnL net of fees and funding against the account's daily loss limit."""
    if -risk.realized_pnl_today >= risk.max_daily_loss_usd:
        return RuleResult(
            "max_daily_loss",
            "fail",
            f"lost {-risk.realized_pnl_today:.2f} USDT today (net of fees and funding; {_synced(risk)}) "
            f">= limit {_plain(risk.max_daily_loss_usd)} USDT",
        )
    return RuleResult(
        "max_daily_loss",
        "pass",
        f"today's net PnL {risk.realized_pnl_today:.2f} USDT ({_synced(risk)}), "
        f"limit -{_plain(risk.max_daily_loss_usd)} USDT",
    )


def rule_max_drawdown(risk: RiskState) -> RuleResult:
    """Peak-to-trough on the account's equity series: the latest equity against the highest seen."""
    peak, now = risk.equity_peak, risk.equity_now
    if peak is None or now is None:
        return RuleResult("max_drawdown", "skip", "no equity recorded yet (the accounting sync has not run)")
    if peak <= 0:
        return RuleResult("max_drawdown", "fail", f"equity peak {peak:.2f} USDT is not positive")
    pct = max(Decimal(0), (peak - now) / peak * 100)
    where = f"equity {now:.2f} USDT is {pct:.2f} % below its peak {peak:.2f} USDT"
    if pct >= risk.max_drawdown_pct:
        return RuleResult("max_drawdown", "fail", f"{where} >= limit {_plain(risk.max_drawdown_pct)} %")
    return RuleResult("max_drawdown", "pass", f"{where}, limit {_plain(risk.max_drawdown_pct)} %")


def validate(v: ValidationInput, risk: RiskState, cfg: ValidationConfig) -> ValidationReport:
    rules = [rule_kill_switch(risk), rule_symbol(v, cfg)]
    if v.direction == "flat":
        # closing only reduces risk: quality rules and entry limits do not apply
        skipped = ("ai_confidence", "lstm_agrees", "backtest_win_rate", "reward_risk", "price_deviation",
                   "max_leverage", "max_position_notional", "max_open_positions", "max_daily_loss",
                   "max_drawdown")  # fmt: skip
        rules += [RuleResult(name, "skip", "closing a position reduces risk") for name in skipped]
    else:
        rules += [
            rule_ai(v, cfg), rule_lstm(v, cfg), rule_win_rate(v, cfg), rule_reward_risk(v, cfg),
            rule_price_deviation(v, cfg), rule_leverage(v, risk), rule_notional(v, risk),
            rule_open_positions(risk), rule_daily_loss(risk), rule_max_drawdown(risk),
        ]  # fmt: skip
    failed = [r for r in rules if r.verdict == "fail"]
    if failed:
        return ValidationReport("reject", f"{failed[0].rule}: {failed[0].reason}", rules)
    return ValidationReport("trade", None, rules)
