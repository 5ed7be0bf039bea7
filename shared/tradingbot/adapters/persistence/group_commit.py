"""Group commit: the items that concurrent callers submit at the same moment share one transaction.

A bar-close burst brings hundreds of alerts at once (issue 16). Stored one transaction each, the
webhook pays a checkout, BEGIN, its statements and a COMMIT (with its WAL flush) per alert, and the
threads queue for the pool. With :class:`GroupCommit` the first caller becomes the *leader*: it takes
every item queued so far (up to ``max_batch``), runs ``process`` on them as one batch — one
transaction, multi-row statements — and hands each caller its own result; callers that arrived
while it worked wait and form the next batch. Nobody waits for a timer: a caller alone (a Lambda
container serves one request at a time) is a batch of one and runs at once, so the same code path
serves AWS and the threaded local server, and latency under light load is unchanged.

A caller returns only after its batch's transaction has committed: batching never acknowledges
anything that is not stored. ``process`` returns one result per item in order; a result that is an
exception is raised to that item's caller only; an exception raised by ``process`` itself (the
database down) is raised to every caller of that batch, and nothing of the batch was written.

This is the leader/follower form of the classic group commit (PostgreSQL's own ``commit_delay``
does the same for WAL flushes, https://www.postgresql.org/docs/16/wal-configuration.html), done
here one level up, where it also saves the round trips.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

MAX_BATCH = 200  # one multi-row statement stays well under PostgreSQL's 65,535 bind parameters


class _Slot[T, R]:
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit[T, R]:
    """Run ``process`` on the items concurrent callers submit, a batch at a time.

    ``process(items) -> results`` gets at most ``max_batch`` items, in arrival order, and must
    return exactly one result (or exception instance) per item."""

    def __init__(self, process: Callable[[Sequence[T]], Sequence[R | BaseException]], *,
                 max_batch: int = MAX_BATCH) -> None:  # fmt: skip
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        self._process = process
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot[T, R]] = []
        self._leading = False
        self.batches = 0  # how many batches ran (for tests and benchmarks)
        self.items = 0

    def submit(self, item: T) -> R:
        """Process ``item`` (with whatever else is waiting) and return its result once committed."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._queue.append(slot)
            while not slot.done and self._leading:
                self._cond.wait()
            lead = not slot.done
            if lead:
                self._leading = True
        if lead:
            try:
                while not slot.done:  # FIFO: the leader's own item is in one of the next batches
                    with self._cond:
                        batch = self._queue[: self.max_batch]
                        del self._queue[: self.max_batch]
                    self._run(batch)
            finally:
                with self._cond:
                    self._leading = False  # a waiting caller whose item is still queued leads next
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # R (None only when R admits it)

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = list(self._process([s.item for s in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"group commit: {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # every caller of the batch gets the failure
            results = [exc] * len(batch)
        with self._cond:
            for s, r in zip(batch, results, strict=True):
                if isinstance(r, BaseException):
                    s.error = r
                else:
                    s.result = r
                s.done = True
            self.batches += 1
            self.items += len(batch)
            self._cond.notify_all()
