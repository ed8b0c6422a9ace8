"""A job's concurrency budget: its adaptive limit, and the split of that limit between the job's workers.

A job's backend is shared by all of the job's running batches. Each worker invocation holds a lease on the
job's budget: what it wants in flight, what it holds, and until when the lease holds, so that the share of a
worker that died comes back by itself. Every `renew` is one step over plain data: a `Budget` is the job's
summary (its limit and the `room` the limit leaves once every lease's holding is counted), the leases of the
holder's batch as it last read them, and a `Share` (what its holders want together) for each other batch.
data/budgets.py keeps the summary in one small item and each batch's share and leases in a partition of the
batch's own, so that a thousand holders never meet on one partition, and turns the step into writes that
commute: the room is a counter, so holders rarely contend.

- the limit adapts to the backend: additive increase while the holders' requests succeed with their whole
  grant in flight, multiplicative decrease on 429s and 503s or on a median latency over `latency_factor` times
  the best seen, at most once per interval job-wide;
- the limit is split with batches of a 24h window served before `unlimited` ones, max-min fair between the
  batches of a class (a unit that does not divide evenly goes to the earliest deadline), and each batch's
  share packed into as few of its holders as it takes: each in turn gets its whole want. A worker is billed
  for its memory while it waits, so a batch holding a quarter of what it planned for runs a quarter of its
  workers, not all of them a quarter full (a worker left with nothing leaves; see worker.py);
- a holder's grant never makes what the holders count against the limit exceed it: it takes no more than the
  room left. A holder still counts what it has in flight above a shrunken grant (it cannot take those
  requests back), so what the backend sees in flight stays within the limit; a holder over its share shrinks
  at its own next renewal;
- a decrease, and an increase, is decided by the holders that see the congestion (or the room for more),
  each with a chance that grows with its share of the limit (`draw`): a thousand small holders make a
  handful of writes to the summary an interval, not a thousand, and one holder with the whole limit always
  decides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

URGENT_WINDOW = "24h"
# How many holders' worth of the limit, together, decide a decrease (see adapt).
DECIDERS = 8
# How many of a batch's holders, an interval, move its pool to or from the room (see renew).
GIVERS = 2
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
class Share:
    """A batch's entry in its job's budget, as holders of other batches see it: its holders' wants together."""

    want: int
    holders: int
    urgent: bool
    deadline: float | None
    members: int = 0  # moves whenever one of its leases joins, leaves or changes what it wants
    pool: int = 0  # what it took from the room that none of its leases holds now (Budget.pools)


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
    room: float  # the limit less what every batch took (its pool and its leases): negative after a cut
    leases: Mapping[str, Lease] = field(default_factory=dict)  # the holder's batch's, or every batch's
    shares: Mapping[str, Share] = field(default_factory=dict)  # the batches whose leases are not in `leases`
    # Per batch, what it took from the room that none of its leases holds now (a pool its holders grow from).
    pools: Mapping[str, int] = field(default_factory=dict)
    best_latency: float | None = None
    decreased_at: float | None = None
    decreased_for: str | None = None  # "throttled" or "latency"
    members: int = 0  # moves whenever a batch joins the budget or leaves it: the shares to read again
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
    draw: float = 0.0,
) -> tuple[Budget, int]:
    """The budget after `holder` acquires (report None) or renews its lease, and the holder's new grant.

    Leases found expired are dropped and their holding goes back to the room. The same budget back (its
    version unchanged) when there is nothing to write: the renewal changes nothing but its lease's times and
    half its lease is left. `adapting` False: the report's effect on the limit is written already. `draw`: a
    uniform number in [0, 1) that decides whether this holder decides a decrease (see adapt).
    """
    original = budget
    budget = _with_limit(budget, min(budget.limit, float(ceiling)), ceiling=ceiling)
    batch = claim.batch_id
    previous = budget.leases.get(holder)
    pool = budget.pools.get(batch, 0)
    # Only its own batch's leases are its to reclaim (they are all a holder reads): what one held goes back to
    # the batch's pool, and on to the room below if the batch has more than its share.
    expired = {k: v for k, v in budget.leases.items() if k != holder and v.batch_id == batch and v.expires <= now}
    if expired:
        leases = {k: v for k, v in budget.leases.items() if k not in expired}
        pool += sum(v.held for v in expired.values())
        budget = dataclasses.replace(budget, leases=leases)
    if report is not None and previous is not None and adapting:
        budget = adapt(budget, previous, report, now, tuning, draw=draw)
    want = max(0, claim.want)
    # Its grant as it was, only to keep its place among its batch's holders (split).
    place = previous.grant if previous is not None else 0
    candidate = Lease(batch, want, place, 0, claim.urgent, claim.deadline, now, now + tuning.lease_seconds)
    viewed = {**budget.leases, holder: candidate}
    shares = allot(budget.capacity, batches_of(viewed, budget.shares))
    target = pack(shares.get(batch, 0), [h for h, v in viewed.items() if v.batch_id == batch], viewed)[holder]
    had = previous.held if previous is not None else 0
    others = sum(v.held for k, v in budget.leases.items() if v.batch_id == batch and k != holder)
    # A grant comes from the batch's pool first; the pool takes from the room (no more than the room has)
    # what its batch's share leaves room for, all of it at once, so that a batch's holders joining or leaving
    # write the job's summary once between them, not once each.
    need = max(0, target - had)
    taken = 0
    # When every holder of a batch moves at once (a cut, a batch joining or leaving), a few of them move its
    # pool to or from the room for all of them, not each: the summary takes a few writes a batch, not one a
    # holder. A holder alone in its batch always does.
    mates = sum(1 for v in viewed.values() if v.batch_id == batch)
    acting = draw < min(1.0, GIVERS / mates)
    mine = shares.get(batch, 0)
    # A move of a large part of its batch's share (a whole worker's want, as a rule) is made at once.
    if need > pool and (acting or (need - pool) * GIVERS >= mine):
        taken = max(0, min(max(need - pool, mine - others - had - pool), math.floor(budget.room)))
        pool += taken
    # A room below zero (a cut limit) is what every batch must give back: no grant keeps any of it.
    grant = max(0, min(target, had + pool + min(0, math.floor(budget.room))))
    in_flight = report.in_flight if report is not None else 0
    lease = dataclasses.replace(candidate, grant=grant, held=max(grant, in_flight))
    pool -= lease.held - had
    # More than its share (the share shrank, or a lease went), or a room below zero: what is free goes back.
    room = budget.room - taken
    excess = max(pool + others + lease.held - mine, math.ceil(-room))
    given = max(0, min(excess, pool))
    if not acting and given * GIVERS < mine:
        # Its batch's pool gathers what the batch's holders free (a cut shrinks them all at once, a batch
        # joining shrinks many), and a few of them give it back for all.
        given = 0
    pool -= given
    room += given
    after = dataclasses.replace(
        budget,
        leases={**budget.leases, holder: lease},
        pools={**budget.pools, batch: pool},
        room=room,
        version=budget.version + 1,
    )
    if previous is not None and previous.expires - now > tuning.lease_seconds / 2:
        # A steady worker on a steady backend: if only its lease's times would move, the write can wait until
        # half its lease is gone (a write per holder per interval is most of the budget's cost).
        kept = dataclasses.replace(lease, renewed=previous.renewed, expires=previous.expires)
        unchanged = dataclasses.replace(after, leases={**budget.leases, holder: kept}, version=original.version)
        if unchanged == dataclasses.replace(original, pools={**original.pools, batch: original.pools.get(batch, 0)}):
            return original, grant
    return after, grant


def share_of(budget: Budget, holder: str) -> int:
    """What the split gives `holder` of the capacity now: its grant grows to this as the room allows.

    0 when others come first, not when the room is only short for now: a holder over its share gives the
    difference back at its own next renewal, so a holder with a share but no grant yet has it soon.
    """
    if holder not in budget.leases:
        return 0
    return split(budget.capacity, budget.leases, budget.shares)[holder]


def release(budget: Budget, holder: str) -> Budget:
    """The budget without `holder`: what it held goes to its batch's pool, and the pool back to the room once
    no lease of the batch is left."""
    lease = budget.leases.get(holder)
    if lease is None:
        return budget
    leases = {k: v for k, v in budget.leases.items() if k != holder}
    pool = budget.pools.get(lease.batch_id, 0) + lease.held
    room = budget.room
    if not any(v.batch_id == lease.batch_id for v in leases.values()):
        room, pool = room + pool, 0
    pools = {**budget.pools, lease.batch_id: pool}
    return dataclasses.replace(budget, leases=leases, pools=pools, room=room, version=budget.version + 1)


def _with_limit(budget: Budget, limit: float, **changes: Any) -> Budget:
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
        return _with_limit(budget, min(float(budget.ceiling), budget.limit + tuning.increase * share / chance))
    return budget


def _decreased(budget: Budget, now: float, tuning: Tuning, why: str) -> Budget:
    return _with_limit(budget, max(1.0, budget.limit * tuning.decrease), decreased_at=now, decreased_for=why)


def split(capacity: int, leases: Mapping[str, Lease], shares: Mapping[str, Share] | None = None) -> dict[str, int]:
    """Each holder's share of `capacity`: 24h batches first, max-min fair between batches, then packed.

    `shares` stand for the batches none of whose leases are in `leases` (the holder reads only its own batch's).
    """
    given: dict[str, int] = {}
    for batch_id, share in allot(capacity, batches_of(leases, shares or {})).items():
        given.update(pack(share, [h for h, v in leases.items() if v.batch_id == batch_id], leases))
    return given


def batches_of(leases: Mapping[str, Lease], shares: Mapping[str, Share]) -> dict[str, Share]:
    """Every batch as the split sees it: from its leases where they are in view, else from its share."""
    by_batch: dict[str, list[Lease]] = {}
    for holder in sorted(leases):
        by_batch.setdefault(leases[holder].batch_id, []).append(leases[holder])
    batches = {b: s for b, s in shares.items() if b not in by_batch}
    for batch_id, held in by_batch.items():
        batches[batch_id] = Share(sum(v.want for v in held), len(held), held[0].urgent, held[0].deadline)
    return batches


def allot(capacity: int, batches: Mapping[str, Share]) -> dict[str, int]:
    """Each batch's share of `capacity`: 24h batches first, max-min fair between the batches of a class, what
    does not divide evenly to the earliest deadline.

    In whole workers when the capacity holds one for every batch that wants any: a worker is billed for its
    memory while it waits, so three batches on four workers' worth get two, one and one workers, not four
    workers a third empty each. What is left below one worker's want, or all of it when there are more
    batches than workers' worth, is split unit by unit (every batch moves).
    """

    def priority(batch_id: str) -> tuple[bool, float, str]:
        share = batches[batch_id]
        return (not share.urgent, share.deadline if share.deadline is not None else math.inf, batch_id)

    # A worker's want: the most any batch's holders want each, on average.
    quantum = max((math.ceil(s.want / s.holders) for s in batches.values() if s.holders and s.want), default=1)
    order = sorted(batches, key=priority)
    given = dict.fromkeys(order, 0)
    wanting = sum(1 for s in batches.values() if s.want > 0)
    for unit in (quantum, 1) if capacity // quantum >= wanting else (1,):
        left = capacity - sum(given.values())
        for urgent in (True, False):
            ranked = [b for b in order if batches[b].urgent is urgent]
            wants = {b: (batches[b].want - given[b]) // unit for b in ranked}
            for batch_id, slots in max_min_fair(left // unit, ranked, wants).items():
                given[batch_id] += slots * unit
                left -= slots * unit
    return given


def pack(share: int, holders: Sequence[str], leases: Mapping[str, Lease]) -> dict[str, int]:
    """A batch's share in as few of its holders as it takes: each in turn its whole want, those that hold a
    grant first (a share that shrinks is taken from the last of them, and a steady one moves nobody)."""
    given: dict[str, int] = {}
    for holder in sorted(holders, key=lambda h: (leases[h].grant == 0, h)):
        given[holder] = min(leases[holder].want, share)
        share -= given[holder]
    return given


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
