"""The bounded hand-off between socket readers and the Redis writer.

Policy (a slow writer must not grow memory without bound, and must not lose what matters):

* **latest price, mark/funding, forming candle**: coalesce. One slot per (kind, exchange, symbol
  [, timeframe]); a newer value replaces the pending one, because only the newest is ever read.
  These slots are bounded by the number of subscribed streams.
* **closed candles**: never dropped. They wait in a FIFO of at most ``max_closed`` entries; when
  it is full the reader awaits, which stops reading the socket (TCP back-pressure). If the
  exchange then drops us for being slow, the reconnect's gap backfill restores the missing bars.

The writer takes everything pending in one batch (closed candles first, then the slots) and
writes it in one Redis pipeline, so a slow Redis means bigger, fewer batches, not more memory.
"""

from __future__ import annotations

import asyncio
from collections import deque

from tradingbot.adapters.feed.messages import Candle, Event, Price

Slot = tuple[str, str, str, str]


def _slot(event: Event) -> Slot:
    if isinstance(event, Price):
        return ("px", event.exchange, event.symbol, "")
    if isinstance(event, Candle):
        return ("bar", event.exchange, event.symbol, event.timeframe)
    # OKX sends mark price and funding rate on separate channels: keep both
    return ("mark" if event.mark is not None else "fund", event.exchange, event.symbol, "")


class EventBuffer:
    def __init__(self, max_closed: int = 10_000) -> None:
        self.max_closed = max_closed
        self._closed: deque[Candle] = deque()
        self._slots: dict[Slot, Event] = {}
        self._oldest_ms: dict[Slot, int] = {}  # event time of the oldest value coalesced into a slot
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.coalesced = 0
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._closed) + len(self._slots)

    @property
    def bound(self) -> int:
        """Closed-candle capacity; the coalescing slots add at most one per subscribed stream."""
        return self.max_closed

    async def put(self, event: Event) -> None:
        """Queue one event, waiting for room only when it is a closed candle and the FIFO is full."""
        while not self.offer(event):
            self._space.clear()
            await self._space.wait()

    def offer(self, event: Event) -> bool:
        """Queue without waiting; False only for a closed candle when the FIFO is full.
        (The reader's hot path: no coroutine per price update.)"""
        if isinstance(event, Candle) and event.closed:
            if len(self._closed) >= self.max_closed:
                return False
            self._closed.append(event)
        else:
            slot = _slot(event)
            if slot in self._slots:
                self.coalesced += 1
            else:
                self._oldest_ms[slot] = event.event_ms
            self._slots[slot] = event
        size = len(self._closed) + len(self._slots)
        self.high_water = max(self.high_water, size)
        self._ready.set()
        return True

    async def take(self) -> tuple[list[Event], list[int]]:
        """Wait for anything pending; return (events in write order, their oldest event times)."""
        await self._ready.wait()
        self._ready.clear()
        events: list[Event] = list(self._closed)
        oldest = [c.event_ms for c in self._closed]
        self._closed.clear()
        events.extend(self._slots.values())
        oldest.extend(self._oldest_ms[s] for s in self._slots)
        self._slots.clear()
        self._oldest_ms.clear()
        self._space.set()
        return events, oldest
