"""What a holder knows of its job's budget between renewals (Holding), and the budget it steps from: the
polled summary, its batch's leases and the other batches' shares, each read again only when it moved."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from batchline.budget import Budget, Claim, Lease, Share, Tuning
from batchline.data.budgets.partitions import join, other_shares, read_batch
from batchline.data.budgets.summary import read_or_make
from batchline.data.table import Table


@dataclass
class Holding:
    """What one holder knows of its job's budget between renewals (a worker invocation's, in memory)."""

    holder: str
    lease: Lease | None = None  # as written: its `held` is what the room counts for it
    leases: dict[str, Lease] | None = None  # its batch's leases as last read
    members: int | None = None  # its batch's share's `members` that `leases` goes with
    leases_read: float = 0.0  # when
    pool: int = 0  # its batch's pool as last read
    shares: dict[str, Share] | None = None  # the other batches' shares as last read
    batches: int | None = None  # the summary's `members` that `shares` goes with
    shares_read: float = 0.0  # when
    share: int | None = None  # what the split gave it at its last renewal (budget.share_of); None before one


def view(
    table: Table,
    job_id: str,
    holding: Holding,
    claim: Claim,
    summary: Budget | None,
    share: Share | None,
    ceiling: int,
    now: float,
    tuning: Tuning,
) -> Budget | None:
    """The budget to step from: the polled summary, the batch's leases and the other batches' shares as
    last read, each read again only when it moved (or a lease ago: a batch-mate that died is found
    then, and the split between batches is that stale at worst). None if its batch's share could not be
    made (the transaction met another)."""
    batch_id = claim.batch_id
    stale = tuning.lease_seconds
    if summary is None:
        summary = read_or_make(table, job_id, ceiling)
    members = summary.members  # the summary's, with its own batch's join if it makes it now
    made = False
    if (holding.leases is None or share is None or share.members != holding.members
            or now - holding.leases_read >= stale):  # fmt: skip
        share, leases = read_batch(table, job_id, batch_id)
        if share is None:
            joined = join(table, job_id, claim)
            if not joined.written and "share" not in joined.refused:
                return None
            made = joined.written
            members += 1 if made else 0
            # Made now (nothing in it), or by a batch-mate just before: then read what it holds.
            share, leases = (
                (Share(0, 0, claim.urgent, claim.deadline), {}) if made else read_batch(table, job_id, batch_id)
            )
            if share is None:
                return None
        holding.leases = leases
        holding.members = share.members
        holding.pool = share.pool
        holding.leases_read = now
    elif share is not None:
        holding.pool = share.pool  # as polled: a stale one costs a refused write, never a grant too many
    if holding.shares is None or members != holding.batches or now - holding.shares_read >= stale:
        # A summary no batch has joined but its own has no registry to read.
        holding.shares = other_shares(table, job_id, batch_id) if members > 1 or not made else {}
        holding.batches = members
        holding.shares_read = now
    pools = {batch_id: holding.pool}
    return dataclasses.replace(summary, leases=holding.leases, shares=holding.shares, pools=pools)
