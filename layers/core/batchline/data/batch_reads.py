"""Reading batch records: a tenant's, by id alone, a page of them, and the status a worker polls.

Apart from `batches.Batches`, which inherits these, so that module holds a batch's status changes alone.
"""

from __future__ import annotations

from typing import Any

from batchline.data.table import Table
from batchline.errors import NotFound
from batchline.models import BatchRecord


class BatchReads:
    """Batch records as read from the table."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def key(batch_id: str) -> dict[str, str]:
        return {"pk": batch_id, "sk": "batch"}

    def get_unscoped(self, batch_id: str) -> BatchRecord:
        """A batch by id alone, whatever its tenant: for the run's own functions (its execution is named by it)."""
        item = self._table.get_key(self.key(batch_id), consistent=True)
        if item is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="id")
        return BatchRecord.model_validate(item)

    def run_state(self, batch_id: str) -> tuple[str, float | None]:
        """The batch's status and expiry alone: what a worker polls to know whether to go on sending."""
        return self.state_of(batch_id, self._table.get_fields(self.key(batch_id), ("status", "expires_at")))

    @staticmethod
    def state_of(batch_id: str, item: dict[str, Any] | None) -> tuple[str, float | None]:
        """A batch item's status and expiry (the item as read, whole or projected); NotFound if there is none."""
        if item is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="id")
        expires_at = item.get("expires_at")
        return str(item["status"]), float(expires_at) if expires_at is not None else None

    def page(self, tenant_id: str, *, after: str | None, limit: int) -> tuple[list[BatchRecord], bool]:
        items, more = self._table.list_owned("batch", tenant_id, after=after, limit=limit, newest_first=True)
        return [BatchRecord.model_validate(i) for i in items], more

    def get(self, tenant_id: str, batch_id: str, *, param: str = "id") -> BatchRecord:
        return BatchRecord.model_validate(self._table.get_owned("batch", tenant_id, batch_id, param=param))

    def exists(self, batch_id: str) -> bool:
        """Whether a batch of this id is stored, whoever owns it."""
        return self._table.get("batch", batch_id) is not None
