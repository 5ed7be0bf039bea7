"""The exchange fault matrix (issue 15, part 7), printed as a table.

For each fault on each venue (the Binance USD-M and OKX stand-ins of tests/integration/_fake_exchanges.py,
which follow the venues' documented rules), one decision - long 0.02 BTC with a stop and a target -
runs through the real order path (``execute_intent`` through the real ccxt client, real PostgreSQL
and Redis that this script starts and, for two faults, restarts), then the scheduled reconcile. The
columns are measured from the venue's own books, not from our rows:

* placed: entry orders the venue booked for the decision (must be 1; 0 only for the 418 ban, a
  refusal longer than the Lambda may wait, stored as rejected with its reason);
* duplicates: bookings beyond one per client order id, or entry orders of another decision (must be 0);
* protective: after reconcile, one stop and one target, reduce-only, at the position's size, none
  when flat;
* fees / PnL: what we recorded against the venue's ledger;
* stored: the execution's stored status after reconcile; reconcile: what it repaired / only
  reported, then the drift a second pass still finds.

The scenarios and the measuring are tests/integration/_fault_matrix.py, shared with
tests/integration/test_fault_matrix.py (which asserts the same invariants per cell). Exit status 1
when a cell violates an invariant that is not a known, reported violation, or when a known one no
longer does (then the xfail in the tests must go too).

Run: ``.venv/bin/python benchmarks/bench_fault_matrix.py [--only NAME ...]`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' venue stand-ins and scenarios

from tests.integration._fault_matrix import SCENARIOS, CellResult, OwnServers, cells, run_cell

HEADER = ("fault", "venue", "placed", "dup", "protective (after reconcile)", "fees vs venue", "PnL vs venue",
          "stored", "reconcile", "s")  # fmt: skip


def _row(r: CellResult) -> tuple[str, ...]:
    scenario = SCENARIOS[r.scenario]
    mark = "" if not r.violations else (" (known)" if scenario.known_for(r.venue) else " (NEW)")
    return (
        scenario.title, r.venue, f"{r.placed}/{r.expected_placed}{' !' if r.placed != r.expected_placed else ''}",
        str(r.duplicates), r.protective + mark if not r.protective.startswith("ok") else r.protective, r.fees, r.pnl,
        r.status, r.reconcile, f"{r.seconds:.1f}",
    )  # fmt: skip


def print_table(results: list[CellResult]) -> None:
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "|".join("---:" if h in ("placed", "dup", "s") else "---" for h in HEADER) + "|")
    for r in results:
        print("| " + " | ".join(_row(r)) + " |")


def _short(r: CellResult) -> str:
    """One cell of the summary: "holds" or what broke (measured; "known" = reported, xfail in the tests)."""
    if not r.violations:
        return f"holds ({r.placed} placed)" if r.expected_placed != 1 else "holds"
    parts = []
    if r.placed != r.expected_placed:
        parts.append(f"**{r.placed} placed**")
    if r.duplicates:
        parts.append(f"**{r.duplicates} duplicate(s)**")
    for v in r.violations:
        what, _, detail = v.partition(": ")
        if what.startswith("protective orders after the "):
            parts.append(f"**{detail} after the {what.removeprefix('protective orders after the ')}**")
        elif what.startswith(("fees", "realised")):
            parts.append(f"**{what}: {detail}**")
    return ", ".join(parts) + (" (known)" if SCENARIOS[r.scenario].known_for(r.venue) else " (NEW)")


def print_summary(results: list[CellResult]) -> None:
    """Per fault, both venues: the table README.md's Guarantees section shows."""
    by = {(r.scenario, r.venue): r for r in results}
    print("| fault | binanceusdm | okx |")
    print("|---|---|---|")
    for name in dict.fromkeys(r.scenario for r in results):
        cols = [_short(by[(name, v)]) if (name, v) in by else "n/a" for v in ("binanceusdm", "okx")]
        print(f"| {SCENARIOS[name].title} | {cols[0]} | {cols[1]} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run (default: all)")
    args = parser.parse_args()
    # the restarts make SQLAlchemy's pool log the connections the server closed; they are expected
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    results: list[CellResult] = []
    started = time.monotonic()
    with OwnServers.running() as servers:
        for name, venue in cells():
            if args.only and name not in args.only:
                continue
            results.append(run_cell(servers, name, venue))
            print(f"  {name:<28} {venue:<12} {'ok' if not results[-1].violations else 'VIOLATED'}", flush=True)
        restarts = dict(servers.restarts)
    print()
    print_table(results)
    print()
    print_summary(results)
    held = [r for r in results if not r.violations]
    known = [r for r in results if r.violations and SCENARIOS[r.scenario].known_for(r.venue)]
    new = [r for r in results if r.violations and not SCENARIOS[r.scenario].known_for(r.venue)]
    stale = [r for r in results if not r.violations and SCENARIOS[r.scenario].known_for(r.venue)]
    duplicates = sum(r.duplicates for r in results)  # bookings beyond one per client id, from the venues' books
    placed = sum(r.placed for r in results)
    expected = sum(r.expected_placed for r in results)
    print(f"\n{len(held)} of {len(results)} cells hold every invariant; {len(known)} known violations "
          f"(reported), {len(new)} new; entry orders placed {placed} of {expected} expected, duplicates "
          f"{duplicates}; servers restarted: {restarts}; {time.monotonic() - started:.0f} s")  # fmt: skip
    for r in known + new:
        tag = "known" if r in known else "NEW"
        print(f"- [{tag}] {r.scenario} on {r.venue}: {'; '.join(r.violations)}")
    for name in dict.fromkeys(r.scenario for r in known):
        print(f"  {name}: {SCENARIOS[name].known_violation}")
    for r in stale:
        print(f"- [fixed?] {r.scenario} on {r.venue} holds now: remove its known_violation and the xfail")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
