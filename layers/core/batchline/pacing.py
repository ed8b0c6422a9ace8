"""A worker's side of its job's budget: the in-flight gate its grant sizes, and what it reports at each renewal."""

from __future__ import annotations

import asyncio
import statistics
from collections import deque

from batchline.budget import THROTTLE_STATUSES, Report
from batchline.providers import Outcome


class Limiter:
    """A first-come-first-served in-flight gate whose size may change while requests run.

    Shrinking it takes nothing back from what is in flight: no one else starts until enough have finished.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._saturated = False

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < self.size:
            self._admit()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # admitted just as it was cancelled: the slot goes back
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def resize(self, size: int) -> None:
        self.size = max(0, size)
        self._wake()

    def saturated(self) -> bool:
        """Whether the whole size was in flight at some moment since the last call."""
        was, self._saturated = self._saturated, self.size > 0 and self.in_flight >= self.size
        return was or self._saturated

    def _admit(self) -> None:
        self.in_flight += 1
        if self.in_flight >= self.size:
            self._saturated = True

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._admit()
                waiter.set_result(None)


class Interval:
    """What the backend answered since the last renewal: successes, throttled attempts, latency."""

    def __init__(self) -> None:
        self._successes = 0
        self._throttled = 0
        self._latencies: list[float] = []

    def _clear(self) -> None:
        self._successes = self._throttled = 0
        self._latencies = []

    def observe(self, outcome: Outcome, seconds: float) -> None:
        """One attempt (a retried one too) and how long it took."""
        if outcome.status_code is None:
            return  # no answer: a timeout or a dropped connection says nothing of the backend's pace
        self._latencies.append(seconds)
        if outcome.ok:
            self._successes += 1
        elif outcome.status_code in THROTTLE_STATUSES:
            self._throttled += 1

    def take(self, *, in_flight: int, saturated: bool) -> Report:
        """The report on this interval; the next one starts empty."""
        report = Report(
            successes=self._successes,
            throttled=self._throttled,
            median_latency=statistics.median(self._latencies) if self._latencies else None,
            saturated=saturated,
            in_flight=in_flight,
        )
        self._clear()
        return report
