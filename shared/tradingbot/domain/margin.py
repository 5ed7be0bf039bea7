"""Maintenance margin and liquidation price of a USDT-margined one-way position (pure Decimal maths).

Binance publishes its tiers as *notional and leverage brackets* (``GET /fapi/v1/leverageBracket``,
https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Notional-and-Leverage-Brackets):
per bracket a ``notionalCap``, a ``maintMarginRatio`` and ``cum``, the "auxiliary number for quick
calculation", so that the maintenance margin of a position is ``notional * maintMarginRatio - cum``
with the bracket its notional falls in. ``cum`` makes that continuous across brackets, so it follows
from the caps and rates: ``cum_n = cum_{n-1} + cap_{n-1} * (mmr_n - mmr_{n-1})``; :func:`brackets`
derives it instead of copying numbers that could disagree.

The endpoint is USER_DATA (it needs an API key), so the paper venue carries a snapshot: the BTCUSDT
(125x), ETHUSDT (100x) and 75x tables as published by Binance's own calculator and recorded in
https://gist.github.com/crackcomm/e29582030d9eeac6c6124a7503cd0ac2 (BTC's first brackets also in
https://gist.github.com/highfestiva/b71e76f51eed84d56c1be8ebbcc286b5: 50k @ 0.4 %, 250k @ 0.5 %,
1M @ 1 %, cum 0 / 50 / 1,300, which the derivation below reproduces). Binance changes brackets now
and then; a paper account liquidates by this snapshot, a live one by the venue.

Liquidation price, Binance's one-way formula as the highfestiva gist implements it (it reproduces the
venue's calculator): with side ``s`` = +1 long / -1 short,

    LP = (WB - TMM1 + UPNL1 + cum - s * qty * entry) / (qty * mmr - s * qty)

where WB is the wallet balance backing the position (isolated: the position's margin; cross: the
whole wallet) and TMM1 / UPNL1 the maintenance margin and unrealised PnL of the account's *other*
positions (cross only; 0 when isolated). The bracket is the one the notional at LP falls in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

INF = Decimal("Infinity")


@dataclass(frozen=True)
class Bracket:
    cap: Decimal  # upper notional edge (USDT)
    mmr: Decimal  # maintenance margin rate
    cum: Decimal  # maintenance amount


def brackets(table: Sequence[tuple[float | int, str]]) -> tuple[Bracket, ...]:
    """``[(notional cap, maintenance margin rate), ...]`` ascending -> brackets with ``cum`` derived."""
    out: list[Bracket] = []
    cum = Decimal(0)
    prev_cap, prev_mmr = Decimal(0), Decimal(0)
    for cap, mmr in table:
        rate = Decimal(mmr)
        cum += prev_cap * (rate - prev_mmr)
        out.append(Bracket(INF if cap == float("inf") else Decimal(cap), rate, cum))
        prev_cap, prev_mmr = out[-1].cap, rate
    return tuple(out)


# (notional cap in USDT, maintenance margin rate): the snapshot named in the module docstring
BTC_125X = brackets([(50_000, "0.004"), (250_000, "0.005"), (1_000_000, "0.01"), (10_000_000, "0.025"),
                     (20_000_000, "0.05"), (50_000_000, "0.1"), (100_000_000, "0.125"), (200_000_000, "0.15"),
                     (300_000_000, "0.25"), (float("inf"), "0.5")])  # fmt: skip
ETH_100X = brackets([(10_000, "0.005"), (100_000, "0.0065"), (500_000, "0.01"), (1_000_000, "0.02"),
                     (2_000_000, "0.05"), (5_000_000, "0.1"), (10_000_000, "0.125"), (20_000_000, "0.15"),
                     (float("inf"), "0.25")])  # fmt: skip
ALT_75X = brackets([(10_000, "0.0065"), (50_000, "0.01"), (250_000, "0.02"), (1_000_000, "0.05"),
                    (2_000_000, "0.1"), (5_000_000, "0.125"), (10_000_000, "0.15"),
                    (float("inf"), "0.25")])  # fmt: skip


# The backtester's one maintenance margin rate (a float: its compiled kernel works in floats): the
# first BTCUSDT bracket of the snapshot above (0.4 % up to 50,000 USDT notional), so the backtester
# and the paper venue liquidate a small BTC position at the same rate. The backtester has one rate,
# not the brackets: a position's notional changes with equity, the bracket with it.
FIRST_TIER_MMR: float = float(BTC_125X[0].mmr)


def bracket_for(table: Sequence[Bracket], notional: Decimal) -> Bracket:
    for b in table:
        if notional <= b.cap:
            return b
    return table[-1]


def maintenance_margin(table: Sequence[Bracket], notional: Decimal) -> Decimal:
    """``notional * mmr - cum`` of the bracket ``notional`` falls in (never negative)."""
    b = bracket_for(table, abs(notional))
    return max(abs(notional) * b.mmr - b.cum, Decimal(0))


def liquidation_price(
    table: Sequence[Bracket],
    side: Literal["long", "short"],
    quantity: Decimal,
    entry_price: Decimal,
    wallet_balance: Decimal,
    *,
    other_maintenance: Decimal = Decimal(0),
    other_upnl: Decimal = Decimal(0),
) -> Decimal:
    """The mark price at which the position's margin balance falls to its maintenance margin
    (0 when a long can never be liquidated: the wallet covers a fall to zero)."""
    if quantity <= 0:
        raise ValueError("quantity: must be positive")
    s = Decimal(1) if side == "long" else Decimal(-1)
    for b in table:
        lp = (wallet_balance - other_maintenance + other_upnl + b.cum - s * quantity * entry_price) / (
            quantity * b.mmr - s * quantity
        )
        if quantity * max(lp, Decimal(0)) <= b.cap:
            return max(lp, Decimal(0))
    return max(lp, Decimal(0))
