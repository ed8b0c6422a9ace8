"""Batch records: a batch's status changes, each a conditional write, and the counters that go with them.

Every status change of a batch is written here, a tenant's cancel included. Starting and closing a batch
move its lines in and out of its tenant's enqueued count in the same transaction, and storing one marks
its input file in use: the counts never drift, whatever retries. Reads are in `batch_reads`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from batchline.data import conditions
from batchline.data.batch_reads import BatchReads
from batchline.data.contention import Backoff
from batchline.data.items import TTL_ATTR
from batchline.data.table import Table
from batchline.errors import Conflict, EnqueuedLimitReached, NotFound, ServerError
from batchline.models import BatchRecord, Closing, Merged
from batchline.models.batches import USAGE_PATHS

if TYPE_CHECKING:
    from collections.abc import Iterable


# Which batches a tenant may cancel; once finalize has closed one (a fault ends it), only finalize moves it.
CANCELLABLE = ("validating", "in_progress")


class Batches(BatchReads):
    """Batch records in the table: what reads them (BatchReads), and every change of their status."""

    def __init__(self, table: Table, *, backoff: Backoff | None = None) -> None:
        super().__init__(table)
        self._backoff = backoff or Backoff()

    def put(self, record: BatchRecord) -> None:
        """Store a new batch and mark its input file in use, together: the file cannot vanish under it."""
        outcome = (
            self._table.transaction()
            .update(
                "file",
                {"pk": record.input_file_id, "sk": "file"},
                # No TTL while in use: DynamoDB would remove the record, and the sweeper the bytes the
                # batch still reads. The last batch to release it puts its expiry back (restore_expiry).
                "ADD in_use :one REMOVE #ttl",
                condition="tenant_id = :tenant",
                names={"#ttl": TTL_ATTR},
                values={":one": 1, ":tenant": record.tenant_id},
            )
            .put(
                "batch", self._table.item("batch", record, owner=record.tenant_id), condition="attribute_not_exists(pk)"
            )
            .write()
        )
        if "file" in outcome.refused:
            raise NotFound(f"No such File object: {record.input_file_id}", param="input_file_id")
        if not outcome.written:
            raise Conflict(f"Batch {record.id} already exists.")

    def set_status(
        self,
        batch_id: str,
        status: str,
        *,
        allowed_from: Iterable[str],
        fields: dict[str, Any] | None = None,
        unless_closed: bool = False,
    ) -> BatchRecord:
        """One conditional status change, stamping `<status>_at`; Conflict if the batch moved on.

        `unless_closed`: refused too once finalize has closed the batch (then only finalize changes it).
        """
        allowed = list(allowed_from)
        condition = conditions.Attr("status").is_in(allowed)
        item = self._table.update(
            "batch",
            batch_id,
            set_={"status": status, f"{status}_at": int(time.time()), **(fields or {})},
            condition=condition & conditions.absent("closing") if unless_closed else condition,
            conflict=f"Batch {batch_id} is no longer in {', '.join(allowed)}.",
        )
        return BatchRecord.model_validate(item)

    def cancel(self, batch_id: str) -> BatchRecord:
        """validating/in_progress -> cancelling, unless finalize has closed the batch; Conflict if it moved on."""
        return self.set_status(batch_id, "cancelling", allowed_from=CANCELLABLE, unless_closed=True)

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
        outcome = (
            self._table.transaction()
            .update(
                "batch",
                {"pk": batch.id, "sk": "batch"},
                "SET #status = :to, in_progress_at = :now, request_counts = :counts, enqueued = :n",
                condition="#status = :from AND (attribute_not_exists(closing) OR attribute_type(closing, :null))",
                names={"#status": "status"},
                values={
                    ":to": "in_progress",
                    ":from": "validating",
                    ":now": now,
                    ":counts": {"total": total, "completed": 0, "failed": 0},
                    ":n": total,
                    ":null": "NULL",
                },
            )
            .update(
                "tenant",
                {"pk": batch.tenant_id, "sk": "tenant"},
                "ADD enqueued :n",
                condition="attribute_exists(pk) AND (attribute_not_exists(enqueued) OR enqueued <= :room)",
                values={":n": total, ":room": enqueued_limit - total},
            )
            .write()
        )
        if "batch" in outcome.refused:
            raise moved
        if "tenant" in outcome.refused:
            raise EnqueuedLimitReached(enqueued_limit)
        if not outcome.written:
            # A transient conflict or throttling: the function fails and Step Functions retries it.
            raise ServerError(f"Starting batch {batch.id} failed: {outcome}")
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
                condition=conditions.Attr("status").eq(from_status) & conditions.absent("closing"),
                conflict=conflict,
            )
            return BatchRecord.model_validate(item)
        names = {f"#s{i}": name for i, name in enumerate(set_)}
        values: dict[str, Any] = {f":s{i}": value for i, value in enumerate(set_.values())}
        values |= {":from": from_status, ":n": batch.enqueued, ":null": "NULL"}
        outcome = (
            self._table.transaction()
            .update(
                "batch",
                {"pk": batch.id, "sk": "batch"},
                "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_))),
                # enqueued: what plan added is what leaves (it never changes after plan).
                condition="#status = :from AND enqueued = :n AND "
                "(attribute_not_exists(closing) OR attribute_type(closing, :null))",
                names=names | {"#status": "status"},
                values=values,
            )
            .update(
                "tenant",
                {"pk": batch.tenant_id, "sk": "tenant"},
                "ADD enqueued :minus",
                values={":minus": -batch.enqueued},
            )
            .write()
        )
        if "batch" in outcome.refused:
            raise Conflict(conflict)
        if not outcome.written:
            raise ServerError(f"Closing batch {batch.id} failed: {outcome}")
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
            condition=conditions.Attr("closing").attribute_type("M") & conditions.absent("closing.merged"),
            conflict=f"Batch {batch_id}'s merge is recorded already.",
        )
        return BatchRecord.model_validate(item)

    def release_input(self, batch: BatchRecord) -> bool:
        """Once per batch, whatever retries: its input file is no longer in use. False if already done.

        The file's item is shared with every batch that reads it, so DynamoDB may cancel the release for
        contention: that is tried again, never taken for "done", which would leave the file in use for good.
        """
        for _ in self._backoff.tries():
            outcome = (
                self._table.transaction()
                .update(
                    "batch",
                    self.key(batch.id),
                    "SET released = :yes",
                    condition="attribute_not_exists(released)",
                    values={":yes": True},
                )
                .update(
                    "file",
                    {"pk": batch.input_file_id, "sk": "file"},
                    "ADD in_use :minus",
                    condition="attribute_exists(pk)",
                    values={":minus": -1},
                )
                .write()
            )
            if outcome.written:
                return True
            if outcome.refused:
                return False  # released before, or the file is gone: nothing holds it in use
            if not outcome.contended:
                raise ServerError(f"Releasing batch {batch.id}'s input failed: {outcome}")
        # Its callers are safe to repeat (finalize's Retry, a create that failed): they release it then.
        raise ServerError(f"Releasing batch {batch.id}'s input conflicted {self._backoff.attempts} times.")
