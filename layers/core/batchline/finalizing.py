"""Finalize: merge a batch's recorded segments into its output and error files, then end the batch.

Every input line ends in exactly one of the two files: the lines segments answered, in input order,
and every line no segment answered (cancelled, expired, or never run because of a fault) as an error
line. Safe to run again: file ids derive from the batch id, status changes are conditional, and the
input file is released once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import islice
from typing import Any

from botocore.exceptions import ClientError

from batchline import files, ids, lines
from batchline.errors import Conflict
from batchline.models import BatchError, BatchErrors, BatchObject, BatchRecord, public
from batchline.observability import logger
from batchline.planning import manifest_key
from batchline.store import ObjectWriter, Store
from batchline.validation import Chunk, iter_request_lines, parse_request_line

TERMINAL = ("completed", "failed", "cancelled", "expired")
EVENT_TYPES = {
    "completed": "Batch Completed",
    "failed": "Batch Failed",
    "cancelled": "Batch Cancelled",
    "expired": "Batch Expired",
}

Publish = Callable[[str, dict[str, Any]], None]


def finalize(store: Store, publish: Publish, batch_id: str, fault: dict[str, Any] | None) -> dict[str, Any]:
    """End the batch in its terminal status; `fault` is the error a failed state handed over."""
    batch = store.batch(batch_id)
    if batch.status not in TERMINAL:
        try:
            batch = _close(store, batch, fault)
        except Conflict:
            # The batch moved (a cancel arrived) while we merged: decide again from where it is now.
            batch = _close(store, store.batch(batch_id), fault)
    _after(store, publish, batch)
    return {"status": batch.status}


def _target(batch: BatchRecord, fault: dict[str, Any] | None, now: float) -> tuple[str, str]:
    """The terminal status, and the code for lines that were never answered."""
    if batch.status == "cancelling":
        return "cancelled", lines.CANCELLED
    if fault is not None or batch.status == "validating":
        return "failed", lines.FAILED
    if batch.expires_at is not None and now >= batch.expires_at:
        return "expired", lines.EXPIRED
    return "completed", lines.FAILED


def _close(store: Store, batch: BatchRecord, fault: dict[str, Any] | None) -> BatchRecord:
    status, unsent_code = _target(batch, fault, time.time())
    if status == "completed":
        batch = store.set_batch_status(batch.id, "finalizing", allowed_from=["in_progress"])
    out_id = ids.derived_file_id(batch.id, "output")
    err_id = ids.derived_file_id(batch.id, "errors")
    out = store.writer(files.file_key(batch.tenant_id, out_id))
    err = store.writer(files.file_key(batch.tenant_id, err_id))
    try:
        unsent = _merge(store, batch, out, err, unsent_code)
        out_size, err_size = out.close(), err.close()
    except BaseException:
        out.abort()
        err.abort()
        raise
    if status == "completed" and unsent:
        status = "expired" if unsent_code == lines.EXPIRED else "failed"
    store.add_failed(batch.id, unsent)
    fields: dict[str, Any] = {
        "output_file_id": _register(store, batch, out_id, "output", out_size),
        "error_file_id": _register(store, batch, err_id, "errors", err_size),
        "processing_cost": batch.usage.total_tokens * batch.price_1m_tokens / 1_000_000,
    }
    if status == "failed" and fault is not None:
        fields["errors"] = BatchErrors(data=[_fault_error(fault)]).model_dump()
    allowed = ["finalizing"] if batch.status == "finalizing" else [batch.status]
    ended = store.set_batch_status(batch.id, status, allowed_from=allowed, fields=fields)
    logger.info("Batch ended", extra={"batch_id": batch.id, "status": status, "unsent": unsent})
    return ended


def _manifest(store: Store, batch: BatchRecord) -> list[Chunk] | None:
    try:
        raw = b"".join(store.stream(manifest_key(batch.id)))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return [Chunk(**chunk) for chunk in json.loads(raw)]


def _merge(store: Store, batch: BatchRecord, out: ObjectWriter, err: ObjectWriter, unsent_code: str) -> int:
    """Write every recorded segment's lines in input order, and an error line for every other line."""
    chunks = _manifest(store, batch)
    source = files.file_key(batch.tenant_id, batch.input_file_id)
    if chunks is None:
        # Stopped before planning (cancelled or a fault): nothing was sent, every line is unsent.
        if batch.errors is not None:
            return 0  # the file itself was invalid; `errors` says why, there are no lines to answer
        return _unsent(store.open_object(source), 0, 0, err, unsent_code)
    by_chunk: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for segment in store.segments(batch.id):
        by_chunk[int(segment["chunk"])].append(segment)
    unsent = 0
    for chunk in chunks:
        covered = 0
        for segment in sorted(by_chunk[chunk.chunk], key=lambda s: int(s["cursor"])):
            if int(segment["cursor"]) != covered:
                continue  # not part of the chain from the chunk's start (cannot happen with one writer per cursor)
            if segment.get("out_key"):
                store.copy_into(segment["out_key"], out)
            if segment.get("err_key"):
                store.copy_into(segment["err_key"], err)
            covered = int(segment["next_cursor"])
        if covered < chunk.line_count:
            body = store.read_range(source, chunk.start_byte, chunk.end_byte)
            unsent += _unsent(body, chunk.start_byte, covered, err, unsent_code)
    return unsent


def _unsent(body: Any, start_byte: int, skip: int, err: ObjectWriter, code: str) -> int:
    """Error lines for the request lines of `body` after the first `skip`."""
    count = 0
    try:
        for _, raw in islice(iter_request_lines(body, start_byte), skip, None):
            try:
                custom_id = parse_request_line(raw).get("custom_id")
            except ValueError:
                custom_id = None
            err.write(lines.unsent_line(custom_id, code))
            count += 1
    finally:
        body.close()
    return count


def _register(store: Store, batch: BatchRecord, file_id: str, kind: str, size: int) -> str | None:
    """Record a result file (purpose `batch_output`); an empty one is not kept. Its id, or None."""
    if size == 0:
        store.delete_object(files.file_key(batch.tenant_id, file_id))
        return None
    record = files.new_record(
        batch.tenant_id,
        filename=f"{batch.id}_{kind}.jsonl",
        purpose="batch_output",
        size=size,
        expires_after=batch.output_expires_after,
        file_id=file_id,
    )
    with contextlib.suppress(Conflict):  # registered by an earlier attempt at finalizing
        store.put_file(record)
    return file_id


def _fault_error(fault: dict[str, Any]) -> BatchError:
    cause = fault.get("Cause") or fault.get("Error") or "unknown"
    with contextlib.suppress(TypeError, ValueError, AttributeError):  # Lambda's error payload, when it is one
        cause = json.loads(cause).get("errorMessage", cause)
    return BatchError(code="batch_failed", message=f"The batch failed: {str(cause)[:500]}")


def _after(store: Store, publish: Publish, batch: BatchRecord) -> None:
    """What follows the terminal status, each step safe to repeat."""
    store.release_input(batch)
    if batch.inbox_key:
        _to_outbox(store, batch)
    detail = public(BatchObject, batch).model_dump(mode="json")
    publish(EVENT_TYPES[batch.status], detail)


def _to_outbox(store: Store, batch: BatchRecord) -> None:
    """Results of an inbox batch also go next to where it came from: outbox/<job>/<name>.*.jsonl."""
    assert batch.inbox_key is not None
    job_and_name = batch.inbox_key.removeprefix("inbox/").removesuffix(".jsonl")
    for file_id, suffix in ((batch.output_file_id, "output"), (batch.error_file_id, "errors")):
        if file_id:
            store.copy_object(files.file_key(batch.tenant_id, file_id), f"outbox/{job_and_name}.{suffix}.jsonl")
