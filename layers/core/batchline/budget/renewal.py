"""One holder's step on its job's budget: acquire or renew its lease (its grant from its batch's pool, the
pool to and from the room), or release it. The step is over plain data; data/budgets/ writes it."""

from __future__ import annotations

import dataclasses
import math

from batchline.budget.fairsplit import allot, batches_of, pack
from batchline.budget.limit import adapt, with_limit
from batchline.budget.terms import Budget, Claim, Lease, Report, Tuning

# How many of a batch's holders, an interval, move its pool to or from the room (see renew).
GIVERS = 2


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
    budget = with_limit(budget, min(budget.limit, float(ceiling)), ceiling=ceiling)
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
