"""A job's concurrency budget: its adaptive limit, and the split of that limit between the job's workers.

A job's backend is shared by all of the job's running batches. Each worker invocation holds a lease on the
job's budget: what it wants in flight, what it holds, and until when the lease holds, so that the share of a
worker that died comes back by itself. Every `renew` is one step over plain data: a `Budget` is the job's
summary (its limit and the `room` the limit leaves once every lease's holding is counted) and the leases as
the holder last read them. data/budgets.py keeps the summary in one small item and each lease in an item of
its own, and turns the step into writes that commute: the room is a counter, so holders rarely contend.

- the limit adapts to the backend: additive increase while the holders' requests succeed with their whole
  grant in flight, multiplicative decrease on 429s and 503s or on a median latency over `latency_factor` times
  the best seen, at most once per interval job-wide;
- the limit is split with batches of a 24h window served before `unlimited` ones, max-min fair between the
  batches of a class (a unit that does not divide evenly goes to the earliest deadline), and each batch's
  share max-min fair between its holders;
- a holder's grant never makes what the holders count against the limit exceed it: it takes no more than the
  room left. A holder still counts what it has in flight above a shrunken grant (it cannot take those
  requests back), so what the backend sees in flight stays within the limit; a holder over its share shrinks
  at its own next renewal.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

URGENT_WINDOW = "24h"
# Statuses a backend answers when it is overloaded, not when a request is wrong.
THROTTLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Claim:
    """What a holder asks for at each renewal: its batch, its class, its deadline and how many in flight."""

    batch_id: str
    want: int
    urgent: bool  # a 24h completion window
    deadline: float | None  # the batch's expires_at


@dataclass(frozen=True)
class Lease:
    """A holder's entry in the budget."""

    batch_id: str
    want: int
    grant: int  # what it may start until its next renewal
    held: int  # counted against the limit: its grant, or more while requests from a larger grant finish
    urgent: bool
    deadline: float | None
    renewed: float  # when it last renewed (epoch seconds): its report covers the time since
    expires: float  # a holder that does not renew by then is gone, and its share with it


@dataclass(frozen=True)
class Report:
    """What a holder saw since its last renewal."""

    successes: int = 0
    throttled: int = 0  # attempts answered 429 or 503, retried ones included
    median_latency: float | None = None  # of the attempts that got an answer, in seconds
    saturated: bool = False  # its whole grant was in flight at some moment
    in_flight: int = 0  # requests it may have running until its new grant applies: a shrink frees no more


@dataclass(frozen=True)
class Tuning:
    """How the limit moves and how long a lease lasts."""

    interval: float  # seconds between a holder's renewals
    lease_seconds: float  # a lease not renewed for this long is dropped
    increase: float = 1.0  # added to the limit per interval, job-wide, while the backend keeps up
    decrease: float = 0.5  # the limit's factor on congestion
    latency_factor: float = 2.0  # a median latency over this many times the best seen is congestion
    latency_floor: float = 0.05  # seconds; latencies below it never count as rising (noise, not queueing)


@dataclass(frozen=True)
class Budget:
    """One job's budget as a holder sees it: the summary as read, and the leases as last read."""

    ceiling: int  # the job's max_concurrency
    limit: float  # adaptive, in [1, ceiling]; grants split its integer part
    room: float  # the limit less what every lease holds: negative while holders finish above a cut limit
    leases: Mapping[str, Lease] = field(default_factory=dict)
    best_latency: float | None = None
    decreased_at: float | None = None
    decreased_for: str | None = None  # "throttled" or "latency"
    members: int = 0  # moves whenever a lease joins, leaves or changes what it wants: the leases to read again
    version: int = 0  # moves with every step that has something to write

    @classmethod
    def fresh(cls, ceiling: int) -> Budget:
        return cls(ceiling=ceiling, limit=float(ceiling), room=float(ceiling))

    @property
    def capacity(self) -> int:
        """The whole requests in flight the limit allows."""
        return max(1, math.floor(self.limit))


def renew(
    budget: Budget,
    holder: str,
    claim: Claim,
    report: Report | None,
    now: float,
    tuning: Tuning,
    *,
    ceiling: int,
    adapting: bool = True,
) -> tuple[Budget, int]:
    """The budget after `holder` acquires (report None) or renews its lease, and the holder's new grant.

    Leases found expired are dropped and their holding goes back to the room. The same budget back (its
    version unchanged) when there is nothing to write: the renewal changes nothing but its lease's times and
    half its lease is left. `adapting` False: the report's effect on the limit is written already.
    """
    original = budget
    budget = _with_limit(budget, min(budget.limit, float(ceiling)), ceiling=ceiling)
    previous = budget.leases.get(holder)
    expired = {k: v for k, v in budget.leases.items() if k != holder and v.expires <= now}
    if expired:
        leases = {k: v for k, v in budget.leases.items() if k not in expired}
        freed = sum(v.held for v in expired.values())
        budget = dataclasses.replace(budget, leases=leases, room=budget.room + freed, members=budget.members + 1)
    if report is not None and previous is not None and adapting:
        budget = adapt(budget, previous, report, now, tuning)
    want = max(0, claim.want)
    candidate = Lease(claim.batch_id, want, 0, 0, claim.urgent, claim.deadline, now, now + tuning.lease_seconds)
    target = split(budget.capacity, {**budget.leases, holder: candidate})[holder]
    had = previous.held if previous is not None else 0
    # What the others hold is what the room does not say is free: a grant takes no more than the room.
    grant = max(0, min(target, had + math.floor(budget.room)))
    in_flight = report.in_flight if report is not None else 0
    lease = dataclasses.replace(candidate, grant=grant, held=max(grant, in_flight))
    joined_or_moved = previous is None or previous.want != lease.want
    after = dataclasses.replace(
        budget,
        leases={**budget.leases, holder: lease},
        room=budget.room - (lease.held - had),
        members=budget.members + (1 if joined_or_moved else 0),
        version=budget.version + 1,
    )
    if previous is not None and previous.expires - now > tuning.lease_seconds / 2:
        # A steady worker on a steady backend: if only its lease's times would move, the write can wait until
        # half its lease is gone (a write per holder per interval is most of the budget's cost).
        kept = dataclasses.replace(lease, renewed=previous.renewed, expires=previous.expires)
        if dataclasses.replace(after, leases={**budget.leases, holder: kept}, version=original.version) == original:
            return original, grant
    return after, grant


def share_of(budget: Budget, holder: str) -> int:
    """What the split gives `holder` of the capacity now: its grant grows to this as the room allows.

    0 when others come first, not when the room is only short for now: a holder over its share gives the
    difference back at its own next renewal, so a holder with a share but no grant yet has it soon.
    """
    if holder not in budget.leases:
        return 0
    return split(budget.capacity, budget.leases)[holder]


def release(budget: Budget, holder: str) -> Budget:
    """The budget without `holder`: what it held goes back to the room."""
    lease = budget.leases.get(holder)
    if lease is None:
        return budget
    leases = {k: v for k, v in budget.leases.items() if k != holder}
    return dataclasses.replace(
        budget, leases=leases, room=budget.room + lease.held, members=budget.members + 1, version=budget.version + 1
    )


def _with_limit(budget: Budget, limit: float, **changes: Any) -> Budget:
    """The budget at another limit: the room moves with it, as what the leases hold does not."""
    return dataclasses.replace(budget, limit=limit, room=budget.room + limit - budget.limit, **changes)


def adapt(budget: Budget, previous: Lease, report: Report, now: float, tuning: Tuning) -> Budget:
    """The limit after one holder's report on the interval since `previous.renewed`."""
    median = report.median_latency
    best = budget.best_latency
    slow = median is not None and best is not None and median > tuning.latency_factor * max(best, tuning.latency_floor)
    if median is not None:
        best = median if best is None else min(best, median)
    budget = dataclasses.replace(budget, best_latency=best)
    # Only what was sent after the last decrease says the decreased limit is still too high: several
    # holders reporting the same congestion make one decrease, and the next waits at least an interval.
    after_last_decrease = budget.decreased_at is None or previous.renewed >= budget.decreased_at
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
        # Each holder adds its part of `increase`, so the job's limit grows by about that per interval.
        share = min(1.0, max(previous.grant, 1) / budget.capacity)
        return _with_limit(budget, min(float(budget.ceiling), budget.limit + tuning.increase * share))
    return budget


def _decreased(budget: Budget, now: float, tuning: Tuning, why: str) -> Budget:
    return _with_limit(budget, max(1.0, budget.limit * tuning.decrease), decreased_at=now, decreased_for=why)


def split(capacity: int, leases: Mapping[str, Lease]) -> dict[str, int]:
    """Each holder's share of `capacity`: 24h batches first, max-min fair between batches, then holders."""
    by_batch: dict[str, list[str]] = {}
    for holder in sorted(leases):
        by_batch.setdefault(leases[holder].batch_id, []).append(holder)

    def priority(batch_id: str) -> tuple[bool, float, str]:
        first = leases[by_batch[batch_id][0]]
        return (not first.urgent, first.deadline if first.deadline is not None else math.inf, batch_id)

    shares: dict[str, int] = {}
    left = capacity
    for urgent in (True, False):
        batches = sorted((b for b, hs in by_batch.items() if leases[hs[0]].urgent is urgent), key=priority)
        wants = {b: sum(leases[h].want for h in by_batch[b]) for b in batches}
        for batch_id, share in max_min_fair(left, batches, wants).items():
            left -= share
            holders = by_batch[batch_id]
            shares.update(max_min_fair(share, holders, {h: leases[h].want for h in holders}))
    return shares


def max_min_fair[K: Hashable](capacity: int, order: Sequence[K], wants: Mapping[K, int]) -> dict[K, int]:
    """Whole units of `capacity`, max-min fair over `wants`; what does not divide evenly goes in `order`."""
    given = dict.fromkeys(order, 0)
    active = [k for k in order if wants[k] > 0]
    while capacity > 0 and active:
        each, rest = divmod(capacity, len(active))
        if each == 0:
            for k in active[:rest]:
                given[k] += 1
            break
        for k in active:
            take = min(each, wants[k] - given[k])
            given[k] += take
            capacity -= take
        active = [k for k in active if given[k] < wants[k]]
    return given
