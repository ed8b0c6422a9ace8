"""The data layer, composed: one table and one bucket, and the aggregates that live in them.

Every boto3 call is in `batchline.data`: `table` (DynamoDB) and `objects` (S3) are the primitives,
and each aggregate's module knows its own items. A function builds one Store and passes it on.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from batchline.budget import Budget, Share
from batchline.config import CoreSettings
from batchline.data import budgets
from batchline.data.batches import Batches
from batchline.data.budgets import Budgets
from batchline.data.files import Files
from batchline.data.jobs import Jobs
from batchline.data.objects import Objects
from batchline.data.segments import Segments
from batchline.data.table import Table
from batchline.data.tenants import Tenants
from batchline.data.uploads import Uploads
from batchline.errors import NotFound
from batchline.models import BatchRecord, JobRecord, SegmentRecord


class Store:
    """DynamoDB and S3 access for one table and one bucket; clients are created on first use."""

    def __init__(self, table_name: str, bucket_name: str, *, dynamodb: Any = None, s3: Any = None) -> None:
        self.table = Table(table_name, dynamodb=dynamodb)
        self.objects = Objects(bucket_name, s3=s3)
        self.files = Files(self.table, self.objects)
        self.batches = Batches(self.table)
        self.segments = Segments(self.table)
        self.jobs = Jobs(self.table)
        self.tenants = Tenants(self.table)
        self.uploads = Uploads(self.table)
        self.budgets = Budgets(self.table)

    @classmethod
    def for_settings(cls, settings: CoreSettings) -> Store:
        """The store of a function's configured table and bucket."""
        return cls(settings.table_name, settings.bucket_name)

    def invocation(
        self, batch_id: str, job_id: str, chunk: int, cursor: int
    ) -> tuple[SegmentRecord | None, BatchRecord, JobRecord]:
        """What a worker invocation starts from, in one read: its kept segment if any, the batch, its job."""
        kept, batch, job = self.table.get_keys(
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
        batch, summary, share = self.table.get_keys(
            [Batches.key(batch_id), Budgets.key(job_id), Budgets.share_key(job_id, batch_id)]
        )
        status, expires_at = Batches.state_of(batch_id, batch)
        return Poll(
            status,
            expires_at,
            budgets.summary_from_item(summary) if summary is not None else None,
            budgets.share_from_item(share) if share is not None else None,
        )


class Poll(NamedTuple):
    """What a sending worker reads every interval."""

    status: str
    expires_at: float | None
    summary: Budget | None
    share: Share | None
