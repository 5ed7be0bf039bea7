"""Maintenance margin brackets and Binance's liquidation price (tradingbot.domain.margin)."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from tradingbot.domain.margin import BTC_125X, ETH_100X, bracket_for, liquidation_price, maintenance_margin


def test_cum_is_derived_as_binance_publishes_it() -> None:
    # BTCUSDT's first brackets on Binance's calculator: cum 0 / 50 / 1,300 / 16,300
    assert [b.cum for b in BTC_125X[:4]] == [0, 50, 1300, 16300]
    # continuity: at a cap, both neighbouring brackets give the same maintenance margin
    for lower, upper in pairwise(ETH_100X[:-1]):
        assert lower.cap * lower.mmr - lower.cum == lower.cap * upper.mmr - upper.cum


@pytest.mark.parametrize("side", ["long", "short"])
@pytest.mark.parametrize(("qty", "leverage"), [("0.1", 20), ("3", 10), ("50", 50)])
def test_isolated_margin_balance_equals_maintenance_margin_at_the_liquidation_price(
    side: str, qty: str, leverage: int
) -> None:
    q, entry = Decimal(qty), Decimal(50000)
    margin = q * entry / leverage
    lp = liquidation_price(BTC_125X, side, q, entry, margin)  # type: ignore[arg-type]
    upnl = q * (lp - entry) * (1 if side == "long" else -1)
    assert margin + upnl == pytest.approx(maintenance_margin(BTC_125X, q * lp), abs=Decimal("1e-9"))
    assert bracket_for(BTC_125X, q * lp).cap >= q * lp
    assert (lp < entry) if side == "long" else (lp > entry)


def test_a_long_backed_by_more_than_its_notional_is_never_liquidated() -> None:
    assert liquidation_price(BTC_125X, "long", Decimal(1), Decimal(50000), Decimal(60000)) == 0


def test_the_backtester_liquidates_at_the_paper_venues_first_bracket() -> None:
    from tradingbot.domain.backtest.engine import BacktestConfig

    # one source: Binance's first BTCUSDT bracket (0.4 % up to 50,000 USDT), not a second copy
    assert BTC_125X[0].mmr == Decimal("0.004") and BTC_125X[0].cap == 50_000
    assert Decimal(str(BacktestConfig().maintenance_margin)) == BTC_125X[0].mmr
