"""Business metrics (issue 17), as Powertools Metrics (CloudWatch EMF), from the one place that sees
a whole decision: the record_outcome handler, which every execution reaches on every path.

Per decision (namespace ``TradingBot``, dimension ``service``; names the CDK dashboard and the
rejection-spike alarm read, cdk/tradingbot_infra/cockpit_monitoring.py):

* ``DecisionsTraded`` / ``DecisionsRejected`` / ``DecisionsFailed`` (count);
* ``RejectedBy<Rule>`` (count): the first failing rule (e.g. ``RejectedByMinWinRate``);
* ``OrdersPlaced`` / ``OrdersFilled`` / ``OrdersRejected`` (count, per order leg of the execution report);
* ``SlippageBps`` (each filled entry leg's average price against the alert's price, adverse > 0);
* ``VoterLatencyMs``, ``VoterCostUsd`` (each voting seat) and ``VoterAbstentions`` (count).

Metrics go out only where EMF is on (on Lambda; ``edge._emf_enabled``), so in-process runs stay quiet.
Alerts accepted and refused, realized PnL and the feed's lag and reconnects are counted where they
are decided, in ``tradingbot.adapters.metrics``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tradingbot.pipeline.contracts import CastAbstention, RecordRequest, Unconfigured

_OUTCOME = {"traded": "DecisionsTraded", "rejected": "DecisionsRejected", "failed": "DecisionsFailed"}


def metric_name(rule: str) -> str:
    """``min_win_rate`` -> ``RejectedByMinWinRate``."""
    return "RejectedBy" + "".join(part.capitalize() for part in rule.replace("-", "_").split("_") if part)


def slippage_bps(side: str, alert_price: Decimal, fill_price: Decimal) -> Decimal:
    """Adverse slippage of a fill against the alert's price, in basis points (> 0 = worse)."""
    signed = (fill_price - alert_price) if side == "buy" else (alert_price - fill_price)
    return signed / alert_price * 10_000


def record(metrics: Metrics, req: RecordRequest) -> dict[str, float]:
    """Add the decision's metrics to ``metrics`` (flushed by the edge); returns what was added."""
    added: dict[str, float] = {}

    def add(name: str, unit: MetricUnit, value: float) -> None:
        metrics.add_metric(name=name, unit=unit, value=value)
        added[name] = added.get(name, 0.0) + value

    state = req.state
    add(_OUTCOME[req.outcome], MetricUnit.Count, 1)
    if state.validation is not None:
        failed = next((r for r in state.validation.rules if r.verdict == "fail"), None)
        if failed is not None:
            add(metric_name(failed.rule), MetricUnit.Count, 1)
    if state.execution is not None:
        for leg in state.execution.orders:
            add("OrdersPlaced", MetricUnit.Count, 1)  # every leg the order service sent to the venue
            if leg.status in ("filled", "partially_filled"):
                add("OrdersFilled", MetricUnit.Count, 1)
                if leg.leg == "open" and leg.average_price:
                    try:
                        bps = slippage_bps(leg.side, Decimal(str(state.alert.price)), Decimal(leg.average_price))
                    except (InvalidOperation, ZeroDivisionError):
                        continue
                    add("SlippageBps", MetricUnit.Count, float(bps))
            elif leg.status in ("rejected", "failed"):
                add("OrdersRejected", MetricUnit.Count, 1)
    for seat in state.ballots or []:
        if isinstance(seat, Unconfigured):  # no credentials: not a vote, nothing to measure
            continue
        add("VoterLatencyMs", MetricUnit.Milliseconds, float(seat.latency_ms))
        add("VoterCostUsd", MetricUnit.Count, float(seat.cost_usd))
        if isinstance(seat, CastAbstention):
            add("VoterAbstentions", MetricUnit.Count, 1)
    return added
