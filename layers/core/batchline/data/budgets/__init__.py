"""Job budgets: a small summary item per job, and a partition per batch that holds the job: its share (what its
holders want together) and an item per lease.

A thousand holders on one job must not meet on one partition (DynamoDB serves 3,000 read and 1,000 write
units a second per partition), so each holder reads and writes its own batch's partition, and the job's only
shared items are the summary and a registry of the batches in the budget:

- the poll (store.poll) reads the summary and the holder's batch's share with its batch's status, eventually
  consistent; the holder queries its batch's leases only when the share's `members` moved, and reads the
  other batches' shares only when a batch joined or left (the summary's `members`) or half a lease has gone
  by (the split between batches is that stale at worst);
- a lease change is one transaction: the lease, its batch's share (conditional on it being there), and the
  summary's room only when what the lease holds moved (conditional on the room holding what it takes, so two
  holders growing at once never take more than the limit). The lease is conditional on still being there
  (one a reclaimer removed is joined afresh, never counted twice);
- a limit the report moved: an increase adds to the limit and the room together (it commutes with other
  holders' increases; one that would pass the ceiling is dropped); a decrease is conditional on the summary
  as read, and redone from the summary the refusal returns (budget.adapt has a few holders decide either,
  not each);
- an expired lease of the holder's batch goes with its holding back to the room, in one transaction
  conditional on the lease as read, so one reclaimer wins and a lease renewed meanwhile stays; when a batch
  ends, finalize gives back whatever its partition still holds (`release_batch`).

A renewal that changes nothing but its lease's times writes nothing until half its lease is gone.

Its parts: items.py (the keys and each item to and from the budget's terms), summary.py (the job's summary:
the limit and the room), partitions.py (a batch's share and pool, the registry, a batch joining and
leaving), view.py (what a holder reads, and when), leases.py (one holder's lease written, reclaimed,
released). `Budgets` here is what a holder, finalize and the poll call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Iterator

from botocore.exceptions import ClientError

from batchline import budget as logic
from batchline.budget import Budget, Claim, Lease, Report, Share, Tuning
from batchline.data.budgets import items, leases, partitions
from batchline.data.budgets.items import share_from_item, summary_from_item
from batchline.data.budgets.summary import write_limit
from batchline.data.budgets.view import Holding, view
from batchline.data.table import Table, throttled
from batchline.errors import ServerError

# What the poll (store.poll), the worker's pacer and the benchmarks take from here.
__all__ = ["BudgetContended", "Budgets", "Holding", "share_from_item", "summary_from_item"]

RENEW_ATTEMPTS = 8
RENEW_BACKOFF_BASE = 0.01
RENEW_BACKOFF_CAP = 0.5


class BudgetContended(ServerError):
    """Every attempt at a renewal lost to another writer: the holder keeps its grant until its lease ends."""


@contextlib.contextmanager
def _contended_on_throttle(job_id: str) -> Iterator[None]:
    """DynamoDB throttling a budget's partition is contention: the holder keeps its grant, as for a lost race."""
    try:
        yield
    except ClientError as exc:
        if not throttled(exc):
            raise
        raise BudgetContended(f"DynamoDB throttled job {job_id}'s budget: {exc}") from exc


class Budgets:
    """Job budgets in the table."""

    # The keys the poll reads in one round trip with its batch's (store.poll).
    key = staticmethod(items.summary_key)
    share_key = staticmethod(items.share_key)

    def __init__(
        self,
        table: Table,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random.random,
        attempts: int = RENEW_ATTEMPTS,
    ) -> None:
        self._table = table
        self._sleep = sleep
        self._random = random
        self._attempts = attempts

    def get(self, job_id: str) -> Budget | None:
        """The summary with every batch's leases, read consistently (a test's or a report's look, not a
        holder's); None before its first holder."""
        found = self._table.get_key(items.summary_key(job_id), consistent=True)
        if found is None:
            return None
        held: dict[str, Lease] = {}
        pools: dict[str, int] = {}
        for batch_id in partitions.registered(self._table, job_id):
            share, leased = partitions.read_batch(self._table, job_id, batch_id)
            held.update(leased)
            pools[batch_id] = share.pool if share is not None else 0
        return dataclasses.replace(summary_from_item(found), leases=held, pools=pools)

    def renew(
        self,
        job_id: str,
        holding: Holding,
        claim: Claim,
        report: Report | None,
        *,
        now: float,
        tuning: Tuning,
        ceiling: int,
        summary: Budget | None = None,
        share: Share | None = None,
    ) -> int:
        """Acquire (report None) or renew the holding's lease; its grant. `summary` and `share` (its batch's):
        as the poll just read them.

        BudgetContended if every attempt lost to another writer, or DynamoDB throttled a partition: either
        way the holder keeps what its lease still gives and tries again at its next renewal.
        """
        with _contended_on_throttle(job_id):
            return self._renew(job_id, holding, claim, report, now, tuning, ceiling, summary, share)

    def _renew(
        self,
        job_id: str,
        holding: Holding,
        claim: Claim,
        report: Report | None,
        now: float,
        tuning: Tuning,
        ceiling: int,
        summary: Budget | None,
        share: Share | None,
    ) -> int:
        batch_id = claim.batch_id
        budget: Budget | None = None
        adapting = True
        collided = 0  # writes refused: the room, a lease or the batch's share was not as read
        reread = False
        for _ in range(self._attempts):
            if reread:
                reread = False
                # Read them again. Full jitter: holders that collided must not all come back together.
                self._sleep(self._random() * min(RENEW_BACKOFF_CAP, RENEW_BACKOFF_BASE * 2 ** (collided - 1)))
                holding.leases = None
                summary = share = budget = None
            if budget is None:
                budget = view(self._table, job_id, holding, claim, summary, share, ceiling, now, tuning)
                if budget is None:
                    collided, reread = collided + 1, True  # its batch's share could not be made: another writer met it
                    continue
            if holding.lease is not None:
                # Its own lease as it wrote it, whatever an eventually consistent read said.
                budget = dataclasses.replace(budget, leases={**budget.leases, holding.holder: holding.lease})
            after, grant = logic.renew(budget, holding.holder, claim, report, now, tuning, ceiling=ceiling,
                                       adapting=adapting, draw=self._random())  # fmt: skip
            if after.version == budget.version:
                holding.share = logic.share_of(after, holding.holder)
                return grant  # nothing to write (see budget.renew)
            if adapting:
                refused = write_limit(self._table, job_id, budget, after)
                if refused is not None:
                    budget = dataclasses.replace(refused, leases=budget.leases, shares=budget.shares)
                    continue  # another holder moved the limit: the step again, from the summary as it is
                adapting = False
            reclaimed = leases.reclaim(self._table, job_id, holding, batch_id, budget, after)
            if reclaimed is not None and leases.write(self._table, job_id, holding, budget, after, reclaimed):
                holding.lease = after.leases[holding.holder]
                holding.leases = dict(after.leases)
                holding.pool = after.pools.get(batch_id, 0)
                holding.share = logic.share_of(after, holding.holder)
                return grant
            collided, reread = collided + 1, True
        raise BudgetContended(f"Renewing a lease on job {job_id}'s budget conflicted {self._attempts} times.")

    def release(self, job_id: str, holding: Holding) -> None:
        """Give the holding's lease back at once (see leases.release)."""
        leases.release(self._table, job_id, holding)

    def release_batch(self, job_id: str, batch_id: str) -> None:
        """A batch has ended: what its partition still holds goes back to the room (see
        partitions.release_batch)."""
        partitions.release_batch(self._table, job_id, batch_id)
