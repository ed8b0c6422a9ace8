"""The data layer, composed: one table and one bucket, and the aggregates that live in them.

Every boto3 call is in `batchline.data`: `dynamodb` (DynamoDB) and `objects` (S3) are the primitives,
and each aggregate's module knows its own items. A function builds one Store and passes it on; the
table itself stays private to it and the data layer (tests/unit/test_data_sealed.py).
"""

from __future__ import annotations

from typing import Any

from batchline.config import CoreSettings
from batchline.data.batches import Batches
from batchline.data.budgets import Budgets
from batchline.data.files import Files
from batchline.data.jobs import Jobs
from batchline.data.objects import Objects
from batchline.data.rates import Rates
from batchline.data.segments import Segments
from batchline.data.table import Table
from batchline.data.tenants import Tenants
from batchline.data.uploads import Uploads
from batchline.data.worker_reads import Poll, WorkerReads
from batchline.models import BatchRecord, JobRecord, SegmentRecord


class Store:
    """DynamoDB and S3 access for one table and one bucket; clients are created on first use."""

    def __init__(self, table_name: str, bucket_name: str, *, dynamodb: Any = None, s3: Any = None) -> None:
        self._table = Table(table_name, dynamodb=dynamodb)
        self.objects = Objects(bucket_name, s3=s3)
        self.files = Files(self._table, self.objects)
        self.batches = Batches(self._table)
        self.segments = Segments(self._table)
        self.jobs = Jobs(self._table)
        self.tenants = Tenants(self._table)
        self.uploads = Uploads(self._table)
        self.budgets = Budgets(self._table)
        self.rates = Rates(self._table)
        self.worker_reads = WorkerReads(self._table)

    @classmethod
    def for_settings(cls, settings: CoreSettings) -> Store:
        """The store of a function's configured table and bucket."""
        return cls(settings.table_name, settings.bucket_name)

    # The worker calls these on the store; the reads themselves are WorkerReads'.

    def invocation(
        self, batch_id: str, job_id: str, chunk: int, cursor: int
    ) -> tuple[SegmentRecord | None, BatchRecord, JobRecord]:
        """What a worker invocation starts from, in one read: its kept segment if any, the batch, its job."""
        return self.worker_reads.invocation(batch_id, job_id, chunk, cursor)

    def poll(self, batch_id: str, job_id: str) -> Poll:
        """A sending worker's look, in one read (WorkerReads.poll)."""
        return self.worker_reads.poll(batch_id, job_id)
