"""What an EventBridge schedule does on AWS, inside ``tradingbot serve``: a pass every N seconds.

:class:`Every` runs ``run()`` on a daemon thread every ``every_s`` seconds. A failing pass (the
database restarting, Redis away) goes to ``on_error`` and never ends the schedule: the next pass runs
on time. The re-drive sweeper (``pipeline.redrive.SweepLoop``) and the reconcile pass
(``pipeline.reconcile.ReconcileLoop``) are its two users.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Every[R]:
    """``run()`` every ``every_s`` seconds on a daemon thread called ``name``; ``on_pass`` gets each
    pass's result, ``on_error`` each pass's exception. ``passes`` counts the passes that completed and
    ``last`` keeps the latest result."""

    def __init__(
        self,
        name: str,
        run: Callable[[], R],
        *,
        every_s: float,
        on_pass: Callable[[R], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._run, self._every_s, self._on_pass, self._on_error = run, every_s, on_pass, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.passes = 0
        self.last: R | None = None

    def start(self) -> Every[R]:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                result = self._run()
            except Exception as exc:  # a pass must never end the schedule
                if self._on_error is not None:
                    self._on_error(exc)
                continue
            self.passes += 1
            self.last = result
            if self._on_pass is not None:
                self._on_pass(result)
