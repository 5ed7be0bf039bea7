"""GroupCommit: concurrent callers share a batch, each gets its own result, failures reach the right callers."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from tradingbot.adapters.persistence.group_commit import GroupCommit


class Recorder:
    """A ``process`` that blocks its first batch until released, so the test controls who queues."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.first_entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_entered.set()
            self.release.wait(5)
        return [ValueError(f"item {i} is odd") if i % 2 else i * 10 for i in items]


def _submit_all(group: GroupCommit[int, int], items: list[int], results: dict[int, object]) -> list[threading.Thread]:

    def call(i: int) -> None:
        try:
            results[i] = group.submit(i)
        except ValueError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return threads


def test_callers_that_arrive_while_a_batch_runs_form_the_next_batch_and_get_their_own_results() -> None:
    rec = Recorder()
    group: GroupCommit[int, int] = GroupCommit(rec)
    results: dict[int, object] = {}
    threads = _submit_all(group, [0], results)
    assert rec.first_entered.wait(5)
    threads += _submit_all(group, [2, 4, 5, 6], results)
    # the followers are queued behind the running batch; give them time to arrive, then let it finish
    for _ in range(200):
        with group._cond:
            if len(group._queue) == 4:
                break
        threading.Event().wait(0.01)
    rec.release.set()
    for t in threads:
        t.join(5)
    assert rec.batches[0] == [0]
    assert sorted(rec.batches[1]) == [2, 4, 5, 6]  # one batch for all four, not four batches
    assert len(rec.batches) == 2
    assert results[0] == 0 and results[2] == 20 and results[4] == 40 and results[6] == 60
    assert isinstance(results[5], ValueError) and str(results[5]) == "item 5 is odd"  # only its caller


def test_a_failing_batch_fails_every_caller_in_it_and_the_next_batch_still_runs() -> None:
    calls: list[list[str]] = []

    def process(items: Sequence[str]) -> list[str]:
        calls.append(list(items))
        if "boom" in items:
            raise ConnectionError("database went away")
        return [s.upper() for s in items]

    group: GroupCommit[str, str] = GroupCommit(process)
    with pytest.raises(ConnectionError, match="database went away"):
        group.submit("boom")
    assert group.submit("ok") == "OK"  # leadership was released after the failure
    assert calls == [["boom"], ["ok"]]


def test_a_process_that_returns_the_wrong_number_of_results_is_an_error_not_a_silent_mismatch() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        group.submit(1)


def test_batches_never_exceed_max_batch() -> None:
    sizes: list[int] = []

    def process(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        threading.Event().wait(0.02)  # long enough for the others to queue
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(process, max_batch=3)
    out: list[int] = []
    threads = [threading.Thread(target=lambda i=i: out.append(group.submit(i))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(out) == list(range(20))
    assert max(sizes) <= 3 and sum(sizes) == 20
    assert group.batches == len(sizes) < 20  # some callers did share a batch


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch: must be >= 1"):
        GroupCommit(list, max_batch=0)
