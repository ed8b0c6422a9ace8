"""One holder's lease in the table: a change written as one transaction (the lease, its batch's share, and
the room only when what it holds moved), the batch-mates it found expired reclaimed, and its release."""

from __future__ import annotations

from batchline.budget import Budget
from batchline.data import conditions
from batchline.data.budgets.items import lease_item, number
from batchline.data.budgets.partitions import drain, leaving, share_update
from batchline.data.budgets.summary import room_update
from batchline.data.budgets.view import Holding
from batchline.data.table import Table


def _wants(budget: Budget, batch_id: str) -> int:
    """What a batch's leases in view want together."""
    return sum(v.want for v in budget.leases.values() if v.batch_id == batch_id)


def reclaim(table: Table, job_id: str, holding: Holding, batch_id: str, before: Budget, after: Budget) -> int | None:
    """Remove the leases of the holder's batch the step found expired, each with its holding to the batch's
    pool; what they held together, or None if one was not as read (renewed, or reclaimed first)."""
    freed = 0
    for holder, lease in before.leases.items():
        if holder in after.leases or lease.batch_id != batch_id:
            continue
        values = {":read": number(lease.expires)}
        if not leaving(table.transaction(), job_id, holder, lease, "expires = :read", values).write().written:
            return None
        holding.members = None if holding.members is None else holding.members + 1
        freed += lease.held
    return freed


def write(table: Table, job_id: str, holding: Holding, before: Budget, after: Budget, reclaimed: int) -> bool:
    """Write the holder's lease; its batch's share when what it wants or the pool moved; the room when the
    pool took from it or gave back; False if refused."""
    lease = after.leases[holding.holder]
    previous = holding.lease
    batch_id = lease.batch_id
    wanted = lease.want - (previous.want if previous is not None else 0)
    joined = previous is None
    pooled = after.pools.get(batch_id, 0) - before.pools.get(batch_id, 0) - reclaimed
    # The room's move less the limit's (which summary.write_limit wrote): what the pool took from it or gave back.
    given = round((after.room - before.room) - (after.limit - before.limit))
    # A lease that is gone was reclaimed as expired, its holding with it: written afresh, it would be
    # counted twice. Refused, the holder joins again from what it reads.
    there = "attribute_not_exists(sk)" if joined else "attribute_exists(sk)"
    item = lease_item(job_id, holding.holder, lease)
    # Its batch starts or stops wanting anything (a chunk back from a wait, its last line sent): the other
    # batches' holders must split again now, not at their next look at every share.
    woke = _wants(before, batch_id) == 0 and _wants(after, batch_id) > 0
    if not (wanted or joined or pooled or given):
        # Only its times, or what it holds within what it had: neither the pool nor the room moves.
        written = table.put_if(item, conditions.Attr("sk").exists()) is None
    else:
        txn = table.transaction().put("lease", item, condition=there)
        if wanted or joined or pooled:
            share_update(txn, job_id, batch_id, wanted, 1 if joined else 0, pooled=pooled)
        if given or woke:
            room_update(txn, job_id, given, moved=woke)
        outcome = txn.write()
        written = outcome.written
        if not written and "lease" not in outcome.refused:
            return False  # the room or the pool did not hold what it takes
        if written and holding.members is not None:
            holding.members += 1 if (wanted or joined) else 0  # its own move: nothing to read again for it
        if written and woke and holding.batches is not None:
            holding.batches += 1  # the same for the summary's
    if not written and previous is not None:
        holding.lease = None  # reclaimed as expired: it joins again
    return written


def release(table: Table, job_id: str, holding: Holding) -> None:
    """Give the lease back at once: it goes, and what it held goes to its batch's pool, together; the last
    of a batch's holders gives the pool back to the room."""
    lease = holding.lease
    if lease is None:
        return
    holding.lease = None
    left = sum(v.want for h, v in (holding.leases or {}).items() if h != holding.holder)
    txn = leaving(table.transaction(), job_id, holding.holder, lease, "attribute_exists(sk)", {})
    if lease.want and not left:
        room_update(txn, job_id, 0, moved=True)  # its batch wants nothing now
    # Cancelled only when a reclaimer took the expired lease (and its holding) first: nothing left to do.
    if txn.write().written:
        drain(table, job_id, lease.batch_id)
