"""The limit's adaptation (AIMD): additive increase while the backend keeps up, multiplicative decrease on
throttling or rising latency, each decided by a few holders with a chance that grows with their share."""

from __future__ import annotations

import dataclasses
from typing import Any

from batchline.budget.terms import Budget, Lease, Report, Tuning

# How many holders' worth of the limit, together, decide a decrease (see adapt).
DECIDERS = 8


def with_limit(budget: Budget, limit: float, **changes: Any) -> Budget:
    """The budget at another limit: the room moves with it, as what the leases hold does not."""
    return dataclasses.replace(budget, limit=limit, room=budget.room + limit - budget.limit, **changes)


def adapt(budget: Budget, previous: Lease, report: Report, now: float, tuning: Tuning, *, draw: float = 0.0) -> Budget:
    """The limit after one holder's report on the interval since `previous.renewed`.

    Congestion seen by many holders at once is one decrease: each that sees it decides with a chance of
    DECIDERS times its share of the limit (`draw` below it), so the summary gets a few attempts, not one a holder.
    """
    median = report.median_latency
    best = budget.best_latency
    slow = median is not None and best is not None and median > tuning.latency_factor * max(best, tuning.latency_floor)
    if median is not None:
        best = median if best is None else min(best, median)
    budget = dataclasses.replace(budget, best_latency=best)
    # Only what was sent after the last decrease says the decreased limit is still too high: several
    # holders reporting the same congestion make one decrease, and the next waits at least an interval.
    after_last_decrease = budget.decreased_at is None or previous.renewed >= budget.decreased_at
    deciding = draw < DECIDERS * max(previous.grant, 1) / budget.capacity
    after_last_decrease = after_last_decrease and deciding
    if report.throttled:
        if not after_last_decrease:
            return budget
        return _decreased(budget, now, tuning, "throttled")
    if slow:
        if not after_last_decrease:
            return budget
        if budget.decreased_for == "latency":
            # Halving did not bring latency back: the backend is slower, not queueing our requests.
            # Take today's latency as the baseline instead of halving towards nothing.
            return dataclasses.replace(budget, best_latency=median, decreased_for=None)
        return _decreased(budget, now, tuning, "latency")
    if report.successes and report.saturated and budget.limit < budget.ceiling:
        # Each holder adds its part of `increase`, so the job's limit grows by about that per interval; like a
        # decrease, a few holders write it, each what its chance stands for (the same growth, on average).
        share = min(1.0, max(previous.grant, 1) / budget.capacity)
        chance = min(1.0, DECIDERS * share)
        if draw >= chance:
            return budget
        return with_limit(budget, min(float(budget.ceiling), budget.limit + tuning.increase * share / chance))
    return budget


def _decreased(budget: Budget, now: float, tuning: Tuning, why: str) -> Budget:
    return with_limit(budget, max(1.0, budget.limit * tuning.decrease), decreased_at=now, decreased_for=why)
