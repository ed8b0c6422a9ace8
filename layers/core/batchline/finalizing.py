"""Finalize: merge a batch's recorded segments into its output and error files, then end the batch.

Every input line ends in exactly one of the two files: the lines segments answered, in input order,
and every line no segment answered (cancelled, expired, or never run because of a fault) as an error
line. Finalize is a run of steps, each safe to repeat, and a retry resumes at the first one not done:

1. close: the batch records the status it will end in; no worker may record a segment after this.
2. merge: the result files are written whole (an empty one not at all), again on a retry; no segment
   is committed after close, and a segment a worker kept but could not commit is merged here.
3. count: the merge's result, with what it counted itself (unsent lines as failed, the uncommitted
   segments' counts), in one conditional write.
4. end: the result files registered (once), then the terminal status, with the files, usage and cost.
5. after: the input file released once, the inbox's outbox copies, the EventBridge event (at least once).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from botocore.exceptions import ClientError

from batchline import files, ids, layout, result_lines
from batchline.data.objects import Writer
from batchline.data.segments import following
from batchline.errors import Conflict
from batchline.jsonl import iter_request_lines, parse_request_line
from batchline.models import (
    BatchError,
    BatchErrors,
    BatchObject,
    BatchRecord,
    Chunk,
    Closing,
    Merged,
    SegmentRecord,
    public,
)
from batchline.models.batches import USAGE_PATHS
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
# What a kept segment counts, by the names its item and the batch's counters share.
UNCOMMITTED_COUNTS = ("completed", "failed", *USAGE_PATHS)
# Part files opened while an earlier one is written: their GETs' waits for a first byte overlap the
# writes, and their bytes come as they are written, READ_BLOCK at a time (a part is up to a worker's
# segment_bytes: read ahead whole, 4 of them were finalize's largest allocation).
PARTS_OPEN_AHEAD = 4
READ_BLOCK = 1024 * 1024


class Sink(Protocol):
    """Where result lines go: a result file's Writer, or a page of partial results."""

    def write(self, data: bytes, /) -> None: ...


# Asked before each unsent line is written: True stops there (a page of partial results is full).
Stop = Callable[[], bool]


def _never() -> bool:
    return False


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
        merged = _merge_files(store, batch, closing.unsent_code)
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


def _merge_files(store: Store, batch: BatchRecord, unsent_code: str) -> Merged:
    """Write the result files (whole again on a retry); their sizes and what finalize counted itself."""
    out = store.objects.writer(layout.file_key(batch.tenant_id, ids.derived_file_id(batch.id, "output")))
    err = store.objects.writer(layout.file_key(batch.tenant_id, ids.derived_file_id(batch.id, "errors")))
    merged = Merged()
    try:
        _merge(store, batch, out, err, unsent_code, merged)
        merged.output_bytes, merged.error_bytes = out.close(), err.close()
    except BaseException:
        out.abort()
        err.abort()
        raise
    return merged


def manifest(store: Store, batch: BatchRecord) -> list[Chunk] | None:
    """The batch's chunks; None when planning never wrote them."""
    try:
        raw = b"".join(store.objects.stream(layout.manifest_key(batch.id)))
    except ClientError as exc:
        if _missing(exc):
            return None
        raise
    return [Chunk(**chunk) for chunk in json.loads(raw)]


def _merge(store: Store, batch: BatchRecord, out: Writer, err: Writer, unsent_code: str, merged: Merged) -> None:
    """Write every kept segment's lines in input order, and an error line for every other line.

    Fills in `merged`: the lines answered as errors here, the counts of the kept segments no worker
    committed, the total when planning never counted it, and whether the input's bytes were gone.
    """
    chunks = manifest(store, batch)
    uncommitted: dict[str, int] = defaultdict(int)
    if chunks is None:
        # Stopped before planning (cancelled or a fault): nothing was sent, every line is unsent.
        if batch.errors is not None:
            return  # the file itself was invalid; `errors` says why, there are no lines to answer
        try:
            source = layout.file_key(batch.tenant_id, batch.input_file_id)
            merged.unsent = unsent(store.objects.open(source), batch.id, (0, 0), 0, err, unsent_code)
        except ClientError as exc:
            if not _missing(exc):
                raise
            merged.input_missing = True  # nothing tells how many lines there were
        merged.total = merged.unsent
        return
    if batch.in_progress_at is None:
        merged.total = sum(chunk.line_count for chunk in chunks)  # planned, but stopped before it said so
    by_chunk: dict[int, list[SegmentRecord]] = defaultdict(list)
    for segment in store.segments.of_batch(batch.id):
        by_chunk[segment.chunk].append(segment)
    # In the order the result files take them: each chunk's parts, then an error line for each line left.
    steps: list[tuple[str, Writer] | Callable[[], None]] = []
    for chunk in chunks:
        segments, left = chain(chunk, by_chunk[chunk.chunk])
        for segment in segments:
            steps += [(key, writer) for key, writer in ((segment.out_key, out), (segment.err_key, err)) if key]
            if segment.pending:
                for name in UNCOMMITTED_COUNTS:
                    uncommitted[name] += getattr(segment, name)
        if left.covered < chunk.line_count:
            steps.append(functools.partial(answer_left, store, batch, left, err, unsent_code, merged))
    _write_in_order(store, steps)
    merged.uncommitted = dict(uncommitted)


@dataclass(frozen=True)
class Left:
    """The lines of a chunk no segment answered: from line `covered` on, which starts at byte `offset`.

    `skip`: how many of them to leave out (a page of partial results already answered them).
    """

    chunk: Chunk
    covered: int
    offset: int
    skip: int = 0


def chain(chunk: Chunk, segments: Iterable[SegmentRecord]) -> tuple[list[SegmentRecord], Left]:
    """The chunk's segments that follow each other from its start, in order, and what they leave unanswered."""
    found = following(segments, 0)
    covered = 0  # lines of the chunk answered
    offset = chunk.start_byte  # the byte after them
    for segment in found:
        covered, offset = segment.next_cursor, segment.next_offset
    return found, Left(chunk, covered, offset)


def answer_left(
    store: Store, batch: BatchRecord, left: Left, err: Sink, unsent_code: str, merged: Merged, stop: Stop = _never
) -> None:
    """An error line for each line of the chunk that no segment answered (and `left.skip` does not leave out)."""
    chunk, covered, offset = left.chunk, left.covered, left.offset
    source = layout.file_key(batch.tenant_id, batch.input_file_id)
    try:
        body = store.objects.read_range(source, offset, chunk.end_byte)
    except ClientError as exc:
        if not _missing(exc):
            raise
        # The manifest still counts the lines: each gets its error line, without its custom_id.
        merged.input_missing = True
        for index in range(chunk.first_line + covered + left.skip, chunk.first_line + chunk.line_count):
            if stop():
                break
            err.write(
                result_lines.unsent_line(None, result_lines.FAILED, ids.derived_batch_request_id(batch.id, str(index)))
            )
            merged.unsent += 1
        return
    merged.unsent += unsent(body, batch.id, (offset, chunk.first_line + covered), left.skip, err, unsent_code, stop)


def _write_in_order(store: Store, steps: list[tuple[str, Writer] | Callable[[], None]]) -> None:
    """Run the steps in order; the part files are opened a few ahead, in threads, while earlier ones are written."""
    parts = iter([step for step in steps if isinstance(step, tuple)])
    with ThreadPoolExecutor(PARTS_OPEN_AHEAD) as pool:
        ahead: deque[Future[Any]] = deque()
        try:
            for step in steps:
                if not isinstance(step, tuple):
                    step()
                    continue
                while len(ahead) < PARTS_OPEN_AHEAD and (part := next(parts, None)) is not None:
                    # In the invocation's context: its log keys (and, locally, its role) go with the GET.
                    ahead.append(pool.submit(contextvars.copy_context().run, store.objects.open, part[0]))
                body = ahead.popleft().result()
                try:
                    for block in body.iter_chunks(READ_BLOCK):
                        step[1].write(block)
                finally:
                    body.close()
        finally:
            # After a failure, the bodies opened ahead give their connections back.
            for future in ahead:
                if not future.cancel() and future.exception() is None:
                    future.result().close()


def _missing(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] in ("NoSuchKey", "404")


def unsent(
    body: Any, batch_id: str, start: tuple[int, int], skip: int, err: Sink, code: str, stop: Stop = _never
) -> int:
    """Error lines for the request lines of `body` after the first `skip`; `start` is its (byte, request)."""
    start_byte, first_line = start
    count = 0
    try:
        requests = islice(iter_request_lines(body, start_byte), skip, None)
        for index, (_, _, raw) in enumerate(requests, first_line + skip):
            if stop():
                break
            try:
                custom_id = parse_request_line(raw).get("custom_id")
            except ValueError:
                custom_id = None
            request_id = ids.derived_batch_request_id(batch_id, str(index))
            err.write(result_lines.unsent_line(custom_id, code, request_id))
            count += 1
    finally:
        body.close()
    return count


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
