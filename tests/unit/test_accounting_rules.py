"""The accounting arithmetic (tradingbot.domain.accounting) and the risk rules that use it
(max daily loss, max drawdown): each rule fires, passes within its limit, and says why."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import cast

from tradingbot.domain.accounting import (
    FundingPayment,
    Side,
    VenueTrade,
    drawdown,
    episode_for,
    episodes,
    funding_between,
    net_pnl,
    realize,
)
from tradingbot.domain.validation import RiskState, rule_daily_loss, rule_max_drawdown

D = Decimal
BTC = "BTC/USDT:USDT"


def _t(
    i: int, side: str, qty: str, price: str, fee: str = "0", pnl: str | None = None, ccy: str = "USDT"
) -> VenueTrade:
    return VenueTrade(
        str(i), f"o{i}", BTC, cast(Side, side), D(price), D(qty), D(fee), ccy, None if pnl is None else D(pnl), i * 1000
    )


def _risk(**kw: object) -> RiskState:
    base = RiskState(
        kill_switch=None, open_positions=0, has_position_in_symbol=False, realized_pnl_today=D(0),
        max_position_usd=D(1000), max_leverage=3, max_daily_loss_usd=D(100), max_open_positions=1,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- realised PnL by replay (the paper ledger)


def test_realize_average_entry_reduce_and_reverse() -> None:
    trades = [
        _t(1, "buy", "0.1", "50000"),
        _t(2, "buy", "0.1", "51000"),  # average entry 50,500
        _t(3, "sell", "0.05", "52000"),  # +0.05 x 1,500 = 75
        _t(4, "sell", "0.25", "50000"),  # closes 0.15 at -500 = -75, opens short 0.1 at 50,000
        _t(5, "buy", "0.1", "49000"),  # short +0.1 x 1,000 = 100
    ]
    assert [t.realized_pnl for t in realize(trades)] == [D(0), D(0), D(75), D(-75), D(100)]


def test_realize_keeps_the_venues_own_figure() -> None:
    trades = [_t(1, "buy", "1", "100"), _t(2, "sell", "1", "110", pnl="9.5")]
    assert [t.realized_pnl for t in realize(trades)] == [D(0), D("9.5")]


def test_net_pnl_counts_only_settlement_currency_fees() -> None:
    assert net_pnl(_t(1, "sell", "1", "1", fee="0.5", pnl="10")) == D("9.5")
    assert net_pnl(_t(1, "sell", "1", "1", fee="0.001", pnl="10", ccy="BNB")) == D(10)


# ---------------------------------------------------------------- positions (episodes) and their funding


def test_episodes_split_at_flat_and_at_a_reverse() -> None:
    trades = realize([
        _t(1, "buy", "1", "100", fee="0.1"), _t(2, "sell", "1", "110", fee="0.1"),  # long, +10
        _t(3, "sell", "2", "100", fee="0.2"), _t(4, "buy", "3", "90", fee="0.3"),  # short 2 -> long 1, +20
        _t(5, "sell", "1", "95", fee="0.1"),  # long closed at +5
    ])  # fmt: skip
    found = episodes(trades)
    assert [(e.side, e.start_ms, e.end_ms, e.trade_ids, e.realized_pnl, e.fees) for e in found] == [
        ("long", 1000, 2000, ("1", "2"), D(10), D("0.2")),
        ("short", 3000, 4000, ("3", "4"), D(20), D("0.5")),
        ("long", 4000, 5000, ("4", "5"), D(5), D("0.1")),
    ]
    # a stored row opened just after the reverse is the second long, not the short it closed
    assert episode_for(found, "long", 4200) == found[2]
    assert episode_for(found, "short", 3100) == found[1]
    assert episode_for(found, "short", 9_000_000) is None


def test_episode_still_open() -> None:
    found = episodes([_t(1, "buy", "1", "100"), _t(2, "buy", "1", "101")])
    assert [(e.side, e.end_ms, e.trade_ids) for e in found] == [("long", None, ("1", "2"))]


def test_funding_between_counts_only_while_open_and_in_settlement_currency() -> None:
    pays = [
        FundingPayment("a", BTC, D("-0.5"), "USDT", 1500), FundingPayment("b", BTC, D("0.2"), "USDT", 2500),
        FundingPayment("c", "ETH/USDT:USDT", D("9"), "USDT", 1500), FundingPayment("d", BTC, D("1"), "BTC", 1500),
    ]  # fmt: skip
    assert funding_between(pays, BTC, 1000, 2000) == D("-0.5")
    assert funding_between(pays, BTC, 1000, None) == D("-0.3")


# ---------------------------------------------------------------- drawdown


def test_drawdown_is_peak_to_latest() -> None:
    t = [dt.datetime(2026, 12, 1, h, tzinfo=dt.UTC) for h in range(4)]
    dd = drawdown([(t[0], D(1000)), (t[1], D(1200)), (t[2], D(900)), (t[3], D(1080))])
    assert dd is not None and (dd.peak, dd.current, dd.peak_at, dd.pct) == (D(1200), D(1080), t[1], D(10))
    assert drawdown([]) is None


# ---------------------------------------------------------------- the rules


def test_daily_loss_fires_at_the_limit_and_passes_below() -> None:
    fired = rule_daily_loss(_risk(realized_pnl_today=D("-100.00"), accounting_synced_at="2026-12-02T01:00:00+00:00"))
    assert (fired.verdict, fired.reason) == (
        "fail",
        "lost 100.00 USDT today (net of fees and funding; venue records synced 2026-12-02T01:00:00+00:00) "
        ">= limit 100 USDT",
    )
    ok = rule_daily_loss(_risk(realized_pnl_today=D("-99.99")))
    assert (ok.verdict, ok.reason) == ("pass", "today's net PnL -99.99 USDT (never synced), limit -100 USDT")
    assert rule_daily_loss(_risk(realized_pnl_today=D(500))).verdict == "pass"


def test_max_drawdown_fires_at_the_limit_and_passes_below() -> None:
    limit = D("20.000000000000000000")  # as read from numeric(38, 18)
    fired = rule_max_drawdown(_risk(equity_peak=D(10_000), equity_now=D(8000), max_drawdown_pct=limit))
    assert (fired.verdict, fired.reason) == (
        "fail", "equity 8000.00 USDT is 20.00 % below its peak 10000.00 USDT >= limit 20 %",
    )  # fmt: skip
    ok = rule_max_drawdown(_risk(equity_peak=D(10_000), equity_now=D("8000.01"), max_drawdown_pct=limit))
    assert (ok.verdict, ok.reason) == (
        "pass",
        "equity 8000.01 USDT is 20.00 % below its peak 10000.00 USDT, limit 20 %",
    )
    at_peak = rule_max_drawdown(_risk(equity_peak=D(10_000), equity_now=D(10_000), max_drawdown_pct=D("2.5")))
    assert (at_peak.verdict, at_peak.reason) == (
        "pass",
        "equity 10000.00 USDT is 0.00 % below its peak 10000.00 USDT, limit 2.5 %",
    )


def test_max_drawdown_without_equity_is_skipped_and_a_non_positive_peak_fails() -> None:
    assert rule_max_drawdown(_risk()).verdict == "skip"
    assert rule_max_drawdown(_risk(equity_peak=D(0), equity_now=D(0))).verdict == "fail"
