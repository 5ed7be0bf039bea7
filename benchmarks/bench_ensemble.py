"""Ensemble overhead apart from provider latency, and parallel vs sequential wall time.

1. Overhead: local servers answer instantly in each provider's wire format. We time the raw SDK
   call alone (``client.responses.create``), one voter (adapter: prompt, retry wrapper,
   validation), and the whole ensemble (thread pool, rule, record) with 1 and 3 voters.
2. Wall time: three voters whose servers each take 1 s. Parallel ensemble vs the same three voters
   called one after another (the sequential reference), in the same run.

Run: python benchmarks/bench_ensemble.py   (about 20 s)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from tests.conftest import make_candles  # noqa: E402
from tests.unit._ai_fakes import (  # noqa: E402
    Canned,
    FakeProvider,
    anthropic_message,
    chat_completion,
    openai_response,
    vote_json,
)

from tradingbot.adapters.ai.ensemble import Ensemble  # noqa: E402
from tradingbot.adapters.ai.voters.anthropic_voter import AnthropicVoter  # noqa: E402
from tradingbot.adapters.ai.voters.base import Voter  # noqa: E402
from tradingbot.adapters.ai.voters.openai_voter import OpenAICompatibleVoter, OpenAIVoter  # noqa: E402
from tradingbot.domain.brief import SYSTEM_PROMPT, Brief, build_brief, render_user_prompt  # noqa: E402

N = 300
WARMUP = 20


def percentiles(fn: Callable[[], object], n: int = N) -> tuple[float, float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


def voters_for(oa: FakeProvider, an: FakeProvider, cp: FakeProvider) -> list[Voter]:
    return [
        OpenAIVoter(api_key="k", base_url=oa.url + "/v1"),
        AnthropicVoter(api_key="k", base_url=an.url),
        OpenAICompatibleVoter(base_url=cp.url + "/v1"),
    ]


def overhead(brief: Brief) -> None:
    with (
        FakeProvider(Canned(openai_response(vote_json()))) as oa,
        FakeProvider(Canned(anthropic_message({"vote": "LONG", "confidence": 60, "rationale": "x"}))) as an,
        FakeProvider(Canned(chat_completion(vote_json("SHORT")))) as cp,
    ):
        voters = voters_for(oa, an, cp)
        openai_voter = voters[0]
        assert isinstance(openai_voter, OpenAIVoter) and openai_voter.client is not None
        client, prompt = openai_voter.client, render_user_prompt(brief)

        def raw() -> object:  # the same request the adapter sends, nothing else
            return client.responses.create(
                model="gpt-4.1-mini",
                instructions=SYSTEM_PROMPT,
                input=prompt,
                max_output_tokens=300,
                text={"format": {"type": "json_schema", "name": "cast_vote", "schema": {}, "strict": True}},
                temperature=0,
                store=False,
            )

        rows = [
            ("raw SDK call (responses.create)", percentiles(raw)),
            ("one voter (OpenAIVoter.vote)", percentiles(lambda: openai_voter.vote(brief))),
        ]
        with Ensemble([openai_voter]) as one:
            rows.append(("ensemble, 1 voter", percentiles(lambda: one.decide(brief))))
        # CPU reference for the 3-voter row: the SDKs' own work (and the fake servers, which share
        # this process) serialises on the GIL, so parallel cannot beat this by much when latency is 0.
        rows.append(("3 voters called sequentially", percentiles(lambda: [v.vote(brief) for v in voters])))
        with Ensemble(voters) as three:
            rows.append(("ensemble, 3 voters (parallel)", percentiles(lambda: three.decide(brief))))
        rows.append(
            (
                "build_brief (60 candles)",
                percentiles(
                    lambda: build_brief(
                        make_candles([100.0 + i for i in range(60)]), symbol="BTC/USDT", timeframe="1h"
                    ),
                    n=100,
                ),
            )
        )
    base_p50, base_p99 = rows[0][1]
    print(f"\n1) overhead, local servers answering instantly ({N} calls each, ms)")
    print(f"{'':34s}{'p50':>8s}{'p99':>8s}{'p50 - raw':>12s}")
    for label, (p50, p99) in rows:
        print(f"{label:34s}{p50:8.2f}{p99:8.2f}{p50 - base_p50:12.2f}")
    print(f"reference: raw SDK call p50 {base_p50:.2f} ms, p99 {base_p99:.2f} ms")


def wall_time(brief: Brief) -> None:
    delay = 1.0
    with (
        FakeProvider(Canned(openai_response(vote_json()), delay_s=delay)) as oa,
        FakeProvider(
            Canned(anthropic_message({"vote": "LONG", "confidence": 60, "rationale": "x"}), delay_s=delay)
        ) as an,
        FakeProvider(Canned(chat_completion(vote_json("SHORT")), delay_s=delay)) as cp,
    ):
        voters = voters_for(oa, an, cp)
        t0 = time.perf_counter()
        for v in voters:  # sequential reference
            v.vote(brief)
        sequential = time.perf_counter() - t0
        with Ensemble(voters) as ensemble:
            t0 = time.perf_counter()
            decision = ensemble.decide(brief)
            parallel = time.perf_counter() - t0
    assert decision.counts["ABSTAIN"] == 0, decision
    print(f"\n2) three voters that each answer in {delay:.0f} s")
    print(f"sequential reference: {sequential:.3f} s")
    print(f"parallel ensemble:    {parallel:.3f} s")
    print(f"speed-up (sequential / parallel): {sequential / parallel:.2f}x  (ideal 3.00x)")


def main() -> None:
    started = time.perf_counter()
    brief = build_brief(
        make_candles([100.0 + (i % 9) for i in range(60)]),
        symbol="BTC/USDT",
        timeframe="1h",
        indicators={"rsi_14": 57.1, "atr_14": 1.9},
        comment="breakout retest",
    )
    overhead(brief)
    wall_time(brief)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
