"""Batch records: a batch's status changes, each a conditional write, and the counters that go with them.

Starting and closing a batch move its lines in and out of its tenant's enqueued count in the same
transaction, and storing one marks its input file in use: the counts never drift, whatever retries.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from batchline.data import conditions
from batchline.data.table import TTL_ATTR, Backoff, Table, absent, retryable
from batchline.errors import Conflict, EnqueuedLimitReached, NotFound, ServerError
from batchline.models import BatchRecord, Closing, Merged
from batchline.models.batches import USAGE_PATHS

if TYPE_CHECKING:
    from collections.abc import Iterable


class Batches:
    """Batch records in the table."""

    def __init__(self, table: Table, *, backoff: Backoff | None = None) -> None:
        self._table = table
        self._backoff = backoff or Backoff()

    def put(self, record: BatchRecord) -> None:
        """Store a new batch and mark its input file in use, together: the file cannot vanish under it."""
        reasons = self._table.transact(
            (
                "Update",
                {
                    "Key": {"pk": record.input_file_id, "sk": "file"},
                    # No TTL while in use: DynamoDB would remove the record, and the sweeper the bytes the
                    # batch still reads. The last batch to release it puts its expiry back (restore_expiry).
                    "UpdateExpression": "ADD in_use :one REMOVE #ttl",
                    "ConditionExpression": "tenant_id = :tenant",
                    "ExpressionAttributeNames": {"#ttl": TTL_ATTR},
                    "ExpressionAttributeValues": {":one": 1, ":tenant": record.tenant_id},
                },
            ),
            (
                "Put",
                {
                    "Item": self._table.item("batch", record, owner=record.tenant_id),
                    "ConditionExpression": "attribute_not_exists(pk)",
                },
            ),
        )
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise NotFound(f"No such File object: {record.input_file_id}", param="input_file_id")
        if reasons:
            raise Conflict(f"Batch {record.id} already exists.")

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

    def set_status(
        self, batch_id: str, status: str, *, allowed_from: Iterable[str], fields: dict[str, Any] | None = None
    ) -> BatchRecord:
        """One conditional status change, stamping `<status>_at`; Conflict if the batch moved on."""
        allowed = list(allowed_from)
        item = self._table.update(
            "batch",
            batch_id,
            set_={"status": status, f"{status}_at": int(time.time()), **(fields or {})},
            condition=conditions.Attr("status").is_in(allowed),
            conflict=f"Batch {batch_id} is no longer in {', '.join(allowed)}.",
        )
        return BatchRecord.model_validate(item)

    def start(self, batch: BatchRecord, total: int, *, enqueued_limit: int) -> BatchRecord:
        """Plan's end: validating -> in_progress, its lines added to the tenant's enqueued count, together.

        Conflict if the batch moved on (cancelled, closed, planned by a twin); EnqueuedLimitReached if the
        tenant's non-terminal batches would hold more than `enqueued_limit` lines. One transaction: the
        lines are counted exactly when the status changes, so a plan run again never counts them twice.
        """
        moved = Conflict(f"Batch {batch.id} is no longer in validating.")
        if total > enqueued_limit:
            raise EnqueuedLimitReached(enqueued_limit)
        now = int(time.time())
        reasons = self._table.transact(
            (
                "Update",
                {
                    "Key": {"pk": batch.id, "sk": "batch"},
                    "UpdateExpression": "SET #status = :to, in_progress_at = :now, request_counts = :counts, "
                    "enqueued = :n",
                    "ConditionExpression": "#status = :from AND (attribute_not_exists(closing) "
                    "OR attribute_type(closing, :null))",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":to": "in_progress",
                        ":from": "validating",
                        ":now": now,
                        ":counts": {"total": total, "completed": 0, "failed": 0},
                        ":n": total,
                        ":null": "NULL",
                    },
                },
            ),
            (
                "Update",
                {
                    "Key": {"pk": batch.tenant_id, "sk": "tenant"},
                    "UpdateExpression": "ADD enqueued :n",
                    "ConditionExpression": "attribute_exists(pk) AND "
                    "(attribute_not_exists(enqueued) OR enqueued <= :room)",
                    "ExpressionAttributeValues": {":n": total, ":room": enqueued_limit - total},
                },
            ),
        )
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise moved
        if reasons and reasons[1:2] == ["ConditionalCheckFailed"]:
            raise EnqueuedLimitReached(enqueued_limit)
        if reasons:
            # A transient conflict or throttling: the function fails and Step Functions retries it.
            raise ServerError(f"Starting batch {batch.id} failed: {reasons}")
        return self.get_unscoped(batch.id)

    def close(self, batch: BatchRecord, closing: Closing) -> BatchRecord:
        """Finalize's first step: no worker records from now on; a running batch shows `finalizing`.

        The batch's enqueued lines leave the tenant's count in the same write, so exactly once however
        often finalize runs. Conflict if the batch is no longer in the status it was read in, or another
        finalize closed it first.
        """
        from_status = batch.status
        set_: dict[str, Any] = {"closing": closing.model_dump()}
        if from_status == "in_progress":
            set_ |= {"status": "finalizing", "finalizing_at": int(time.time())}
        conflict = f"Batch {batch.id} is no longer in {from_status}, or it is closed already."
        if not batch.enqueued:
            item = self._table.update(
                "batch",
                batch.id,
                set_=set_,
                condition=conditions.Attr("status").eq(from_status) & absent("closing"),
                conflict=conflict,
            )
            return BatchRecord.model_validate(item)
        names = {f"#s{i}": name for i, name in enumerate(set_)}
        values: dict[str, Any] = {f":s{i}": value for i, value in enumerate(set_.values())}
        values |= {":from": from_status, ":n": batch.enqueued, ":null": "NULL"}
        reasons = self._table.transact(
            (
                "Update",
                {
                    "Key": {"pk": batch.id, "sk": "batch"},
                    "UpdateExpression": "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_))),
                    # enqueued: what plan added is what leaves (it never changes after plan).
                    "ConditionExpression": "#status = :from AND enqueued = :n AND "
                    "(attribute_not_exists(closing) OR attribute_type(closing, :null))",
                    "ExpressionAttributeNames": names | {"#status": "status"},
                    "ExpressionAttributeValues": values,
                },
            ),
            (
                "Update",
                {
                    "Key": {"pk": batch.tenant_id, "sk": "tenant"},
                    "UpdateExpression": "ADD enqueued :minus",
                    "ExpressionAttributeValues": {":minus": -batch.enqueued},
                },
            ),
        )
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise Conflict(conflict)
        if reasons:
            raise ServerError(f"Closing batch {batch.id} failed: {reasons}")
        return self.get_unscoped(batch.id)

    def record_merge(self, batch_id: str, merged: Merged) -> BatchRecord:
        """Record the merge's result and add what it counted itself, once, in one write."""
        late = merged.uncommitted
        add = {
            "request_counts.completed": late.get("completed", 0),
            "request_counts.failed": merged.unsent + late.get("failed", 0),
            **{path: late.get(name, 0) for name, path in USAGE_PATHS.items()},
        }
        set_: dict[str, Any] = {"closing.merged": merged.model_dump()}
        if merged.total is not None:
            set_["request_counts.total"] = merged.total  # planning never ran; finalize counted the lines
        item = self._table.update(
            "batch",
            batch_id,
            set_=set_,
            add={name: value for name, value in add.items() if value} or None,
            condition=conditions.Attr("closing").attribute_type("M") & absent("closing.merged"),
            conflict=f"Batch {batch_id}'s merge is recorded already.",
        )
        return BatchRecord.model_validate(item)

    def release_input(self, batch: BatchRecord) -> bool:
        """Once per batch, whatever retries: its input file is no longer in use. False if already done.

        The file's item is shared with every batch that reads it, so DynamoDB may cancel the release for
        contention: that is tried again, never taken for "done", which would leave the file in use for good.
        """
        for _ in self._backoff.tries():
            reasons = self._table.transact(
                (
                    "Update",
                    {
                        "Key": {"pk": batch.id, "sk": "batch"},
                        "UpdateExpression": "SET released = :yes",
                        "ConditionExpression": "attribute_not_exists(released)",
                        "ExpressionAttributeValues": {":yes": True},
                    },
                ),
                (
                    "Update",
                    {
                        "Key": {"pk": batch.input_file_id, "sk": "file"},
                        "UpdateExpression": "ADD in_use :minus",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":minus": -1},
                    },
                ),
            )
            if not reasons:
                return True
            if "ConditionalCheckFailed" in reasons:
                return False  # released before, or the file is gone: nothing holds it in use
            if not retryable(reasons):
                raise ServerError(f"Releasing batch {batch.id}'s input failed: {reasons}")
        # Its callers are safe to repeat (finalize's Retry, a create that failed): they release it then.
        raise ServerError(f"Releasing batch {batch.id}'s input conflicted {self._backoff.attempts} times.")
