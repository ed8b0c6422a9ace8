"""What the worker's budget sees of the backend (every attempt, retried ones too) and its resizable in-flight gate."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from botocore.exceptions import ClientError

from batchline.budget import Tuning
from batchline.data.budgets import BudgetContended, Budgets
from batchline.models import BatchRecord, JobRecord
from batchline.pacing import Interval, Limiter, Pacer
from batchline.providers import Outcome, ProviderSettings
from batchline.providers.retry import Attempt, Retrier, observing_attempts


def test_every_attempt_reaches_the_observer_retried_ones_included() -> None:
    now = [0.0]
    script = [
        Attempt(Outcome.answer(429, {"error": {}}), retryable=True, retry_after=0.0),
        Attempt(Outcome.answer(503, {"error": {}}), retryable=True, retry_after=0.0),
        Attempt(Outcome.answer(200, {"ok": True})),
    ]

    async def attempt() -> Attempt:
        now[0] += 0.25  # each attempt takes a quarter of a second on the retrier's clock
        return script.pop(0)

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    interval = Interval()
    retrier = Retrier(ProviderSettings(), clock=lambda: now[0], sleep=sleep, rng=random.Random(1))

    async def main() -> Outcome:
        with observing_attempts(interval):
            return await retrier.run(attempt, deadline=100.0)

    assert asyncio.run(main()).status_code == 200
    report = interval.take(in_flight=0, saturated=False)
    assert (report.successes, report.throttled, report.median_latency) == (1, 2, 0.25)
    # Taken: the next interval starts empty.
    assert interval.take(in_flight=0, saturated=False).throttled == 0


def test_attempts_outside_an_observed_context_are_not_counted() -> None:
    interval = Interval()
    retrier = Retrier(ProviderSettings(), clock=lambda: 0.0)

    async def attempt() -> Attempt:
        return Attempt(Outcome.answer(429, {"error": {}}))

    asyncio.run(retrier.run(attempt, deadline=1.0))
    assert interval.take(in_flight=0, saturated=False).throttled == 0


def test_a_failure_without_an_answer_is_neither_success_nor_latency() -> None:
    interval = Interval()
    for outcome, seconds in ((Outcome.failure("request_timeout", "slow"), 5.0), (Outcome.answer(500, {}), 0.5)):
        interval.started()
        interval.ended(outcome, seconds)
    report = interval.take(in_flight=2, saturated=True)
    assert (report.successes, report.throttled, report.median_latency) == (0, 0, 0.5)
    assert (report.in_flight, report.saturated) == (2, True)


def test_the_limiter_admits_in_order_and_follows_its_size() -> None:
    async def main() -> list[str]:
        limiter = Limiter(2)
        events: list[str] = []

        async def line(name: str) -> None:
            await limiter.acquire()
            events.append(f"start {name}")

        await line("a")
        await line("b")
        c = asyncio.ensure_future(line("c"))
        d = asyncio.ensure_future(line("d"))
        await asyncio.sleep(0)
        assert events == ["start a", "start b"]
        # Shrunk below what is in flight: releasing one admits nobody.
        limiter.resize(1)
        limiter.release()
        await asyncio.sleep(0)
        assert events == ["start a", "start b"]
        # Grown: the waiters start, first come first.
        limiter.resize(3)
        await asyncio.gather(c, d)
        assert limiter.in_flight == 3
        return events

    assert asyncio.run(main()) == ["start a", "start b", "start c", "start d"]


def test_a_limiter_of_size_zero_admits_nobody_until_it_grows() -> None:
    async def main() -> bool:
        limiter = Limiter(0)
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        blocked = not waiting.done()
        limiter.resize(1)
        await waiting
        return blocked and limiter.in_flight == 1

    assert asyncio.run(main())


def test_a_cancelled_waiter_takes_no_slot() -> None:
    async def main() -> int:
        limiter = Limiter(0)
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.sleep(0)
        limiter.resize(1)
        await asyncio.sleep(0)
        return limiter.in_flight

    assert asyncio.run(main()) == 0


def test_the_limiter_knows_since_when_it_has_kept_within_its_size() -> None:
    now = [10.0]

    async def main() -> list[float | None]:
        limiter = Limiter(3, monotonic=lambda: now[0])
        for _ in range(3):
            await limiter.acquire()
        seen = [limiter.within_since]
        now[0] = 11.0
        limiter.resize(1)  # 3 in flight over a size of 1
        seen.append(limiter.within_since)
        limiter.release()
        seen.append(limiter.within_since)  # 2 still over 1
        now[0] = 12.0
        limiter.release()
        seen.append(limiter.within_since)  # back within from here
        return seen

    assert asyncio.run(main()) == [10.0, None, None, 12.0]


def test_an_attempt_sent_over_the_grant_counts_as_a_success_but_never_as_congestion() -> None:
    interval = Interval()
    for outcome, seconds in ((Outcome.answer(429, {"error": {}}), 0.1), (Outcome.answer(200, {}), 9.0)):
        interval.started()
        interval.ended(outcome, seconds, paced=False)
    report = interval.take(in_flight=0, saturated=False)
    assert (report.successes, report.throttled, report.median_latency) == (1, 0, None)


class ContendedBudgets(Budgets):
    """Every renewal after the first loses its race."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # never reaches a table
        self.calls = 0

    def renew(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        if self.calls > 1:
            raise BudgetContended("lost every race")
        return 6


JOB = JobRecord.model_validate(
    {"id": "job-1", "tenant_id": "t", "model": "m", "provider": {"type": "mock"}, "created_at": 0,
     "sla": {"max_concurrency": 8}}
)  # fmt: skip
BATCH = BatchRecord.model_validate(
    {"id": "batch_1", "tenant_id": "t", "endpoint": "/v1/chat/completions", "input_file_id": "file-1",
     "completion_window": "24h", "status": "in_progress", "created_at": 0, "expires_at": 86_400,
     "job_id": "job-1", "model": "m", "price_1m_tokens": 0.0}
)  # fmt: skip


def test_a_pacer_keeps_its_grant_while_its_lease_lasts_and_none_after_when_renewals_fail() -> None:
    now = [1000.0]
    pacer = Pacer(ContendedBudgets(), JOB, BATCH, tuning=Tuning(interval=2.0, lease_seconds=10.0), holder="w1",
                  clock=lambda: now[0])  # fmt: skip
    assert (pacer.urgent, pacer.deadline) == (True, 86_400.0)

    async def main() -> list[int]:
        sizes = [await pacer.acquire(25)]
        now[0] += 2.0
        await pacer.renew()
        sizes.append(pacer.limiter.size)
        now[0] += 4.0  # past half the lease of the last successful renewal: all that is sure of it
        await pacer.renew()
        sizes.append(pacer.limiter.size)
        return sizes

    assert asyncio.run(main()) == [6, 6, 0]


class ThrottledBudgets(Budgets):
    """DynamoDB throttles the budget's partition (its reads or writes) until `throttled` calls have failed."""

    def __init__(self, throttled: int) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # never reaches a table
        self.throttled, self.calls = throttled, 0

    def _renew(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        if self.calls <= self.throttled:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}}
            raise ClientError(error, "Query")  # what botocore raises once its own retries are spent
        return 5


def test_a_throttled_first_read_of_the_budget_is_waited_out_like_a_contended_one_not_raised() -> None:
    pacer = Pacer(ThrottledBudgets(throttled=2), JOB, BATCH, tuning=Tuning(interval=2.0, lease_seconds=10.0),
                  holder="w1", clock=lambda: 1000.0)  # fmt: skip

    async def main() -> list[int]:
        # No grant yet, so nothing is sent; the next renewals (every status check) try again.
        sizes = [await pacer.acquire(25)]
        await pacer.renew()
        sizes.append(pacer.limiter.size)
        await pacer.renew()
        sizes.append(pacer.limiter.size)
        return sizes

    assert asyncio.run(main()) == [0, 0, 5]


class RecordingBudgets:
    """Grants what it is told, and keeps each report."""

    def __init__(self, *grants: int) -> None:
        self.grants = list(grants)
        self.reports: list[Any] = []

    def renew(self, job_id: str, holding: Any, claim: Any, report: Any, **_: Any) -> int:
        self.reports.append(report)
        return self.grants.pop(0)


def test_a_renewal_counts_what_the_holder_may_start_while_it_runs_not_only_what_is_in_flight() -> None:
    """The renewal runs off the event loop, and the loop keeps admitting under the old grant meanwhile: a
    holder with 8 granted and 3 in flight can have 8 in flight by the time a grant of 4 comes back. Had it
    told the budget 3, the budget would give the other 4 to someone else: 12 at a backend allowed 8."""
    budgets = RecordingBudgets(8, 4)
    pacer = Pacer(budgets, JOB, BATCH, tuning=Tuning(interval=2.0, lease_seconds=10.0), holder="w1",
                  clock=lambda: 1000.0)  # fmt: skip

    async def main() -> None:
        await pacer.acquire(8)
        for _ in range(3):
            assert pacer.limiter.try_acquire()
        await pacer.renew()

    asyncio.run(main())
    assert budgets.reports[1].in_flight == 8
    assert pacer.limiter.size == 4


def test_the_interval_knows_the_most_attempts_at_the_backend_at_once() -> None:
    interval = Interval()
    for _ in range(3):
        interval.started()
    interval.ended(Outcome.answer(200, {}), 0.1)
    interval.started()
    interval.ended(None, 0.1)  # an attempt that raised still leaves
    assert (interval.peak, interval.attempts) == (3, 2)
    interval.take(in_flight=2, saturated=False)
    # The next interval's peak starts from what is at the backend now.
    assert interval.peak == 2


def test_a_shrink_starts_a_new_regime_even_when_what_is_in_flight_already_fits() -> None:
    now = [10.0]

    async def main() -> float | None:
        limiter = Limiter(6, monotonic=lambda: now[0])
        for _ in range(3):
            await limiter.acquire()
        now[0] = 11.0
        # Requests sent under the grant of 6 may still answer 429 after it shrank to 3: they must not count.
        limiter.resize(3)
        return limiter.within_since

    assert asyncio.run(main()) == 11.0


class SharingBudgets:
    """Grants and shares what it is told, one (grant, share) a renewal; None: the renewal is contended."""

    def __init__(self, *steps: tuple[int, int] | None) -> None:
        self.steps = list(steps)

    def renew(self, job_id: str, holding: Any, *args: Any, **_: Any) -> int:
        step = self.steps.pop(0)
        if step is None:
            raise BudgetContended("lost every race")
        grant, holding.share = step
        return grant


def test_a_pacer_is_idle_only_while_the_split_gives_it_no_share_and_nothing_is_in_flight() -> None:
    # No share (0, 0) is idle; no grant for want of room only (0, 4) is not, nor a renewal whose share is not
    # known (contended), nor one with a request still in flight from an earlier grant.
    budgets = SharingBudgets((0, 0), (0, 0), (0, 4), (0, 0), None, (0, 0), (2, 2), (0, 0), (0, 0))
    pacer = Pacer(budgets, JOB, BATCH, tuning=Tuning(interval=2.0, lease_seconds=10.0), holder="w1",
                  clock=lambda: 1000.0)  # fmt: skip

    async def main() -> list[int]:
        seen = [(await pacer.acquire(8), pacer.idle_renewals)[1]]
        for _ in range(5):
            await pacer.renew()
            seen.append(pacer.idle_renewals)
        await pacer.renew()  # granted 2: one starts, and is still in flight at the next renewal
        assert pacer.limiter.try_acquire()
        seen.append(pacer.idle_renewals)
        await pacer.renew()
        seen.append(pacer.idle_renewals)
        pacer.limiter.release()
        await pacer.renew()
        seen.append(pacer.idle_renewals)
        return seen

    assert asyncio.run(main()) == [1, 2, 0, 1, 0, 1, 0, 0, 1]
