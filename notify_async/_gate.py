"""The queue in front of the connection pool: at most ``limit`` requests inside aiohttp.

When more calls are in flight than our own session's pool has connections (100), the
others wait here, in order, rather than in aiohttp's connector. Each of them would
otherwise wait there under a connect timer of its own (an ``asyncio.Timeout``, started and
cancelled per request) and go through the connector's waiter bookkeeping twice; here a
request that finds a free slot pays one comparison, and the waiters share a single timer.
That timer is armed for the earliest deadline and, when it fires, fails the waiters whose
deadline has passed and re-arms for the next one; a waiter that got its slot before never
touches it.

A request that leaves hands its slot straight to the first waiter still waiting, so no
request that arrived later can take it first. aiohttp then finds a connection for it at
once (or opens one, under its own connect timer), since never more than ``limit`` of our
requests are inside it.
"""

from __future__ import annotations

__all__ = ["Gate"]

import asyncio
import time
from collections import deque

# The event loop runs a timer up to its clock's resolution early (1e-9 s on Linux, 15.6 ms
# on Windows); a waiter whose deadline is that close has waited its due. Less, and the
# timer would be re-armed for the same deadline, due again at once, over and over.
_EARLY = time.get_clock_info("monotonic").resolution + 1e-3


class Gate:
    """At most ``limit`` requests at once; the others wait, first come first served."""

    __slots__ = ("_loop", "_timer", "_waiting", "free", "limit")

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = limit
        self.free = limit
        self._loop = loop
        # (deadline, future) in arrival order; a future is done once it got a slot, was
        # failed by the timer, or its caller was cancelled.
        self._waiting: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody waits for it; say whether it was taken."""
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return True
        return False

    async def wait(self, deadline: float) -> None:
        """Wait for a slot until ``deadline`` (the loop's clock); ``TimeoutError`` after it.

        On return the caller holds a slot and must ``leave()``.
        """
        slot = self._loop.create_future()
        self._waiting.append((deadline, slot))
        timer = self._timer
        if timer is None or deadline < timer.when():
            self._arm(deadline)
        try:
            await slot
        except BaseException:
            # Cancelled just after a slot was handed over: hand it on, or it is lost.
            if slot.done() and not slot.cancelled() and slot.exception() is None:
                self.leave()
            raise

    def leave(self) -> None:
        """Give the slot back: to the first waiter still waiting, or to the free count."""
        waiting = self._waiting
        while waiting:
            _, slot = waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.free += 1

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time() + _EARLY
        still: deque[tuple[float, asyncio.Future[None]]] = deque()
        for deadline, slot in self._waiting:
            if slot.done():
                continue
            if deadline <= now:
                slot.set_exception(TimeoutError())
            else:
                still.append((deadline, slot))
        self._waiting = still
        if still:
            self._arm(min(deadline for deadline, _ in still))
