"""Load the ingress takes (issue 16, part 4), shared by tests/integration/test_ingress*.py (asserts)
and benchmarks/bench_ingress.py (prints): a schemathesis run against the webhook's OpenAPI document
(docs/openapi/webhook.json, the document the webhook serves at /docs?format=json), and a wrong-token
flood from one source while another source sends valid alerts."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "webhook.json"


def served_document() -> dict[str, Any]:
    """The OpenAPI document the webhook serves at /docs?format=json (Powertools generates it from the
    handler's routes and models)."""
    from tradingbot.entrypoints.lambdas.webhook import handler

    event = json.loads((OPENAPI.parents[2] / "events" / "webhook_health.json").read_text())
    event.update(path="/docs", queryStringParameters={"format": "json"})
    return json.loads(handler(event, None)["body"])  # type: ignore[no-any-return]


def run_schemathesis(base_url: str, *, examples: int = 150) -> Counter[int]:
    """Every operation of the committed document, positive and negative generated requests (bodies
    that follow the schema and bodies that break it), sent to ``base_url``; returns the statuses."""
    schema = schemathesis.openapi.from_path(str(OPENAPI))
    strategies = [
        op.ok().as_strategy(generation_mode=mode)
        for op in schema.get_all_operations()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    statuses: Counter[int] = Counter()

    @settings(max_examples=examples, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=st.one_of(strategies))
    def send(case: Any) -> None:
        statuses[case.call(base_url=base_url, timeout=10).status_code] += 1

    send()
    return statuses


@dataclass
class FloodResult:
    flood: Counter[int] = field(default_factory=Counter)
    valid: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds to the answer)
    seconds: float = 0.0

    @property
    def valid_p99_s(self) -> float:
        times = sorted(t for _, t in self.valid)
        return times[min(len(times) - 1, int(len(times) * 0.99))] if times else 0.0


def post_from(port: int, source: str, body: bytes, timeout: float = 10) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    started = time.perf_counter()
    try:
        conn.request("POST", "/webhook/tradingview", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - started
    finally:
        conn.close()


def flood(port: int, *, wrong: list[bytes], valid: list[bytes], threads: int = 4) -> FloodResult:
    """``wrong`` from 127.0.0.2 over ``threads`` connections at once while ``valid`` go one by one from
    127.0.0.3 (TradingView's side)."""
    result = FloodResult()
    lock = threading.Lock()
    chunks = [wrong[i::threads] for i in range(threads)]

    def send(bodies: list[bytes]) -> None:
        for body in bodies:
            status, _ = post_from(port, "127.0.0.2", body)
            with lock:
                result.flood[status] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=send, args=(chunk,)) for chunk in chunks]
    for w in workers:
        w.start()
    result.valid = [post_from(port, "127.0.0.3", body) for body in valid]
    for w in workers:
        w.join()
    result.seconds = time.perf_counter() - started
    return result
