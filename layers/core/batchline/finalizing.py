"""Finalize: merge a batch's recorded segments into its output and error files, then end the batch.

Every input line ends in exactly one of the two files: the lines segments answered, in input order,
and every line no segment answered (cancelled, expired, or never run because of a fault) as an error
line. Finalize is a run of steps, each safe to repeat, and a retry resumes at the first one not done:

1. close: the batch records the status it will end in; no worker may record a segment after this.
2. merge (merging.py): the result files are written whole (an empty one not at all), again on a retry; no
   segment is committed after close, and a segment a worker kept but could not commit is merged here.
3. count: the merge's result, with what it counted itself (unsent lines as failed, the uncommitted
   segments' counts), in one conditional write.
4. end: the result files registered (once), then the terminal status, with the files, usage and cost.
5. after: the input file released once, the inbox's outbox copies, the EventBridge event (at least once).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from batchline import files, ids, layout, merging, result_lines
from batchline.errors import Conflict
from batchline.models import BatchError, BatchErrors, BatchObject, BatchRecord, Closing, public
from batchline.observability import logger
from batchline.store import Store

TERMINAL = ("completed", "failed", "cancelled", "expired")
EVENT_TYPES = {
    "completed": "Batch Completed",
    "failed": "Batch Failed",
    "cancelled": "Batch Cancelled",
    "expired": "Batch Expired",
}

Publish = Callable[[str, dict[str, Any]], None]
# PutEvents takes an entry of at most 256 KB (262,144 bytes), Source and DetailType included.
EVENT_DETAIL_BYTES = 250_000


def finalize(store: Store, publish: Publish, batch_id: str, fault: dict[str, Any] | None) -> dict[str, Any]:
    """End the batch in its terminal status; `fault` is the error a failed state handed over."""
    batch = store.batches.get_unscoped(batch_id)
    if batch.status not in TERMINAL and batch.closing is None:
        batch = _close(store, batch, fault)
    if batch.status not in TERMINAL:
        batch = _end(store, batch, fault)
    _after(store, publish, batch)
    return {"status": batch.status}


def _target(batch: BatchRecord, fault: dict[str, Any] | None, now: float) -> tuple[str, str]:
    """The terminal status, and the code for lines that were never answered."""
    if batch.status == "cancelling":
        return "cancelled", result_lines.CANCELLED
    if fault is not None or batch.status == "validating":
        return "failed", result_lines.FAILED
    if batch.expires_at is not None and now >= batch.expires_at:
        return "expired", result_lines.EXPIRED
    return "completed", result_lines.FAILED


def _close(store: Store, batch: BatchRecord, fault: dict[str, Any] | None) -> BatchRecord:
    """Decide the ending once and close the batch to workers; a cancel that came first is decided again."""
    for _ in range(3):  # the status can change under us at most twice (validating -> cancelling, a twin)
        status, unsent_code = _target(batch, fault, time.time())
        try:
            return store.batches.close(batch, Closing(status=status, unsent_code=unsent_code))
        except Conflict:
            batch = store.batches.get_unscoped(batch.id)
            if batch.closing is not None or batch.status in TERMINAL:
                return batch
    raise Conflict(f"Batch {batch.id} keeps changing status; finalize again.")


def _end(store: Store, batch: BatchRecord, fault: dict[str, Any] | None) -> BatchRecord:
    closing = batch.closing
    assert closing is not None
    if closing.merged is None:
        merged = merging.merge_files(store, batch, closing.unsent_code)
        try:
            batch = store.batches.record_merge(batch.id, merged)
        except Conflict:
            batch = store.batches.get_unscoped(batch.id)  # a twin recorded its merge first: that one is the result
        closing = batch.closing
        assert closing is not None and closing.merged is not None
    merged = closing.merged
    # Registered only once the merge is recorded: a record's size is always its final object's.
    output_file_id = _register(store, batch, "output", merged.output_bytes)
    error_file_id = _register(store, batch, "errors", merged.error_bytes)
    status = closing.status
    if status == "completed" and merged.unsent:
        status = "expired" if closing.unsent_code == result_lines.EXPIRED else "failed"
    fields: dict[str, Any] = {
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
    }  # processing_cost is not kept: every batch object derives it from its usage
    reasons = []
    if merged.input_missing:
        status = "failed" if status == "completed" else status
        reasons.append(BatchError(code="input_file_missing", message="The batch's input file's content was gone."))
    if status == "failed" and fault is not None:
        reasons.append(_fault_error(fault))
    if reasons:
        fields["errors"] = BatchErrors(data=reasons).model_dump()
    try:
        ended = store.batches.set_status(batch.id, status, allowed_from=[batch.status], fields=fields)
    except Conflict:
        ended = store.batches.get_unscoped(batch.id)  # a twin ended it first
        if ended.status not in TERMINAL:
            raise
    logger.info("Batch ended", extra={"batch_id": batch.id, "status": ended.status, "unsent": merged.unsent})
    return ended


def _register(store: Store, batch: BatchRecord, kind: str, size: int) -> str | None:
    """Record a result file (purpose `batch_output`); an empty one was never written. Its id, or None."""
    if size == 0:
        return None
    file_id = ids.derived_file_id(batch.id, kind)
    record = files.new_record(
        batch.tenant_id,
        filename=f"{batch.id}_{kind}.jsonl",
        purpose="batch_output",
        size=size,
        expires_after=batch.output_expires_after,
        file_id=file_id,
    )
    with contextlib.suppress(Conflict):  # registered by an earlier attempt at finalizing
        store.files.put(record)
    return file_id


def _fault_error(fault: dict[str, Any]) -> BatchError:
    cause = fault.get("Cause") or fault.get("Error") or "unknown"
    with contextlib.suppress(TypeError, ValueError, AttributeError):  # Lambda's error payload, when it is one
        cause = json.loads(cause).get("errorMessage", cause)
    return BatchError(code="batch_failed", message=f"The batch failed: {str(cause)[:500]}")


def _after(store: Store, publish: Publish, batch: BatchRecord) -> None:
    """What follows the terminal status, each step safe to repeat."""
    store.batches.release_input(batch)
    # A worker that died holding its lease leaves its share counted until it expires; a batch's end ends it.
    store.budgets.release_batch(batch.job_id, batch.id)
    store.files.restore_expiry(batch.input_file_id)  # every time: a retry after a crash between the two writes
    if batch.inbox_key:
        _to_outbox(store, batch)
    publish(EVENT_TYPES[batch.status], event_detail(batch))


def encode_detail(detail: dict[str, Any]) -> str:
    """An event's Detail as sent: compact JSON, non-ASCII as UTF-8 (an escaped emoji costs 12 bytes, not 4)."""
    return json.dumps(detail, ensure_ascii=False, separators=(",", ":"))


def _detail_bytes(detail: dict[str, Any]) -> int:
    return len(encode_detail(detail).encode("utf-8", "surrogatepass"))


def event_detail(batch: BatchRecord, budget: int = EVENT_DETAIL_BYTES) -> dict[str, Any]:
    """The batch object for its event; errors.data cut to the entries that fit the entry's limit."""
    detail = public(BatchObject, batch).model_dump(mode="json")
    errors = detail.get("errors") or {}
    data = errors.get("data") or []
    if not data or _detail_bytes(detail) <= budget:
        return detail
    errors["data"] = []
    room = budget - _detail_bytes(detail)
    for entry in data:
        room -= _detail_bytes(entry) + 1
        if room < 0:
            break
        errors["data"].append(entry)
    return detail


def _to_outbox(store: Store, batch: BatchRecord) -> None:
    """Results of an inbox batch also go next to where it came from: outbox/<job>/<name>.*.jsonl."""
    assert batch.inbox_key is not None
    for file_id, suffix in ((batch.output_file_id, "output"), (batch.error_file_id, "errors")):
        if file_id:
            store.objects.copy(layout.file_key(batch.tenant_id, file_id), layout.outbox_key(batch.inbox_key, suffix))
