"""What a worker reads in one round trip: the items of several aggregates at once, in one BatchGetItem.

A worker invocation starts from its kept segment, its batch and its job; a sending worker looks at its
batch's status and its job's budget every interval. Each is one read of items that belong to different
aggregates, so it is owned here rather than by any one of them.
"""

from __future__ import annotations

from typing import NamedTuple

from batchline.budget import Budget, Share
from batchline.data import budgets
from batchline.data.batches import Batches
from batchline.data.budgets import Budgets
from batchline.data.jobs import Jobs
from batchline.data.segments import Segments
from batchline.data.table import Table
from batchline.errors import NotFound
from batchline.models import BatchRecord, JobRecord, SegmentRecord


class Poll(NamedTuple):
    """What a sending worker reads every interval."""

    status: str
    expires_at: float | None
    summary: Budget | None
    share: Share | None


class WorkerReads:
    """The worker's reads across aggregates, one round trip each."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def invocation(
        self, batch_id: str, job_id: str, chunk: int, cursor: int
    ) -> tuple[SegmentRecord | None, BatchRecord, JobRecord]:
        """What a worker invocation starts from, in one read: its kept segment if any, the batch, its job."""
        kept, batch, job = self._table.get_keys(
            [Segments.key(batch_id, chunk, cursor), Batches.key(batch_id), Jobs.key(job_id)], consistent=True
        )
        if batch is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="id")
        if job is None:
            raise NotFound(f"No such Job object: {job_id}", param="job_id")
        segment = SegmentRecord.model_validate(kept) if kept is not None else None
        return segment, BatchRecord.model_validate(batch), JobRecord.model_validate(job)

    def poll(self, batch_id: str, job_id: str) -> Poll:
        """A sending worker's look, in one read: its batch's status and expiry, its job's budget's summary, and
        its batch's share of the budget.

        Eventually consistent: a cancel is seen an interval later at worst, and a grant's write is conditional
        on the room it takes, so a stale read costs a refused write, never a grant over the limit.
        """
        batch, summary, share = self._table.get_keys(
            [Batches.key(batch_id), Budgets.key(job_id), Budgets.share_key(job_id, batch_id)]
        )
        status, expires_at = Batches.state_of(batch_id, batch)
        return Poll(
            status,
            expires_at,
            budgets.summary_from_item(summary) if summary is not None else None,
            budgets.share_from_item(share) if share is not None else None,
        )
