"""A worker's side of its job's budget: the in-flight gate its grant sizes, and what it reports at each renewal."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable

from batchline.budget import THROTTLE_STATUSES, URGENT_WINDOW, Budget, Claim, Report, Share, Tuning
from batchline.data.budgets import BudgetContended, Budgets, Holding
from batchline.models import BatchRecord, JobRecord
from batchline.observability import logger
from batchline.providers import Outcome


class Limiter:
    """A first-come-first-served in-flight gate whose size may change while requests run.

    Shrinking it takes nothing back from what is in flight: no one else starts until enough have finished.
    """

    def __init__(self, size: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._monotonic = monotonic
        # Since when no more than `size` have been in flight under this size (or a larger one since grown);
        # None while more are, after a shrink.
        self.within_since: float | None = monotonic()

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting."""
        if self._waiters or self.in_flight >= self.size:
            return False
        self._admit()
        return True

    async def acquire(self) -> None:
        if self.try_acquire():
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
        self._note_within()

    def resize(self, size: int) -> None:
        shrunk = size < self.size
        self.size = max(0, size)
        self._wake()
        if shrunk:
            # What was sent before now was sent under the larger size: a new regime starts here, or once
            # enough of it has finished.
            self.within_since = self._monotonic() if self.in_flight <= self.size else None
        self._note_within()

    def _note_within(self) -> None:
        if self.within_since is None and self.in_flight <= self.size:
            self.within_since = self._monotonic()

    def _admit(self) -> None:
        self.in_flight += 1

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._admit()
                waiter.set_result(None)


class Interval:
    """What the backend answered since the last renewal: successes, throttled attempts, latency, and the most
    attempts at the backend at once (a line waiting to retry holds its slot of the gate, not the backend)."""

    def __init__(self) -> None:
        self._successes = 0
        self._throttled = 0
        self._latencies: list[float] = []
        self.attempts = 0  # at the backend now
        self.peak = 0

    def _clear(self) -> None:
        self._successes = self._throttled = 0
        self._latencies = []
        self.peak = self.attempts

    def started(self) -> None:
        self.attempts += 1
        self.peak = max(self.peak, self.attempts)

    def ended(self, outcome: Outcome | None, seconds: float, *, paced: bool = True) -> None:
        """One attempt (a retried one too) and how long it took; None if it raised.

        `paced`: it started while the holder kept within its grant. One that did not says how the old, larger
        grant fared, which the decrease that shrank it has answered already: it counts as a success only.
        """
        self.attempts -= 1
        if outcome is None or outcome.status_code is None:
            return  # no answer: a timeout or a dropped connection says nothing of the backend's pace
        if outcome.ok:
            self._successes += 1
        if not paced:
            return
        self._latencies.append(seconds)
        if outcome.status_code in THROTTLE_STATUSES:
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


class Pacer:
    """One worker invocation's lease on its job's budget: acquired, renewed every interval, released.

    The limiter it sizes is the invocation's in-flight gate; `interval` hears of every attempt (see
    providers.retry.observing_attempts). Renewals run off the event loop; the limiter and the interval
    are only touched on it.
    """

    def __init__(
        self,
        budgets: Budgets,
        job: JobRecord,
        batch: BatchRecord,
        *,
        tuning: Tuning,
        holder: str,
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budgets = budgets
        self.job_id = job.id
        self.ceiling = job.sla.max_concurrency
        self.tuning = tuning
        self.holding = Holding(holder)
        self.clock = clock
        self.batch_id = batch.id
        self.urgent = batch.completion_window == URGENT_WINDOW
        self.deadline = float(batch.expires_at) if batch.expires_at is not None else None
        self.monotonic = monotonic
        self.limiter = Limiter(0, monotonic=monotonic)
        self.interval = Interval()
        self.want = 0  # what it asks for at each renewal: none once it has no more lines to start
        # Renewals in a row, its acquire included, that gave it no share (data.budgets.Holding.share), so no
        # grant, and found nothing in flight. Nothing starts at a grant of 0: two in a row bound an interval
        # it idled through whole.
        self.idle_renewals = 0
        self._lease_ends = 0.0
        self._interval_began = monotonic()

    def started(self) -> None:
        """An attempt begins (the Retrier's AttemptObserver)."""
        self.interval.started()

    def ended(self, outcome: Outcome | None, seconds: float) -> None:
        """An attempt's outcome: counted as congestion only if it was sent within the grant."""
        within = self.limiter.within_since
        paced = within is not None and self.monotonic() - seconds >= within
        self.interval.ended(outcome, seconds, paced=paced)

    async def acquire(self, want: int) -> int:
        """Join the budget wanting `want` in flight; the grant sizes the limiter."""
        self.want = want
        self._interval_began = self.monotonic()
        return await self._renew(None, None, None)

    async def renew(self, summary: Budget | None = None, share: Share | None = None) -> int:
        """Report the interval and take the new grant; `summary` and `share`: the budget's summary and the
        batch's share of it, as just polled."""
        # The grant was used (as many attempts at the backend at once) while the holder kept within it the
        # whole interval: only then do successes say the backend has room for more.
        within = self.limiter.within_since
        paced = within is not None and within <= self._interval_began
        saturated = paced and self.limiter.size > 0 and self.interval.peak >= self.limiter.size
        self._interval_began = self.monotonic()
        # The renewal runs off the event loop, which keeps admitting under the current grant until the new
        # one comes back: what the holder may have in flight by then is its grant, if more than it has now.
        report = self.interval.take(in_flight=max(self.limiter.in_flight, self.limiter.size), saturated=saturated)
        return await self._renew(report, summary, share)

    def short(self) -> bool:
        """Its grant is below the share the split gives it: it waits for the room others are giving back."""
        share = self.holding.share
        return share is not None and self.limiter.size < min(share, self.want)

    def lapse(self) -> None:
        """A renewal failed: keep the grant while its lease lasts, none after (others may have it by then)."""
        if self.clock() >= self._lease_ends:
            self.limiter.resize(0)

    async def _renew(self, report: Report | None, summary: Budget | None, share: Share | None) -> int:
        claim = Claim(self.batch_id, self.want, self.urgent, self.deadline)
        now = self.clock()
        try:
            grant = await asyncio.to_thread(
                self.budgets.renew, self.job_id, self.holding, claim, report,
                now=now, tuning=self.tuning, ceiling=self.ceiling, summary=summary, share=share,
            )  # fmt: skip
        except BudgetContended:
            logger.warning("Budget renewal contended", extra={"job_id": self.job_id, "holder": self.holding.holder})
            self.lapse()
            self.idle_renewals = 0  # its share is not known: it stays, as it would have
            return self.limiter.size
        # A renewal that changed nothing may not have been written (budget.renew): half a lease is what is sure.
        self._lease_ends = now + self.tuning.lease_seconds / 2
        self.limiter.resize(grant)
        # No grant because the room is short only is not idle: the room comes back at the others' renewals.
        idle = grant == 0 and self.holding.share == 0 and self.limiter.in_flight == 0
        self.idle_renewals = self.idle_renewals + 1 if idle else 0
        return grant

    async def release(self) -> None:
        """Give the lease back now rather than at its expiry; a failure only delays that."""
        try:
            await asyncio.to_thread(self.budgets.release, self.job_id, self.holding)
        except Exception:  # noqa: BLE001  # the lease expires by itself; the invocation's answer matters more
            logger.exception("Budget release failed", extra={"job_id": self.job_id, "holder": self.holding.holder})
