"""Finalize's merge: every kept segment's part files, in input order, into a batch's output and error files,
and an error line for each line no segment answered (cancelled, expired, or never run because of a fault).

Written whole on each try (a retry writes them again); partial results read a batch's lines through the
same chain of segments and the same unsent lines (partials.py), so what they return is what these files hold.
"""

from __future__ import annotations

import contextvars
import functools
import json
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from botocore.exceptions import ClientError

from batchline import ids, layout, result_lines
from batchline.data.objects import Writer
from batchline.data.segments import following
from batchline.jsonl import iter_request_lines, parse_request_line
from batchline.models import BatchRecord, Chunk, Merged, SegmentRecord
from batchline.models.batches import USAGE_PATHS
from batchline.store import Store

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


def merge_files(store: Store, batch: BatchRecord, unsent_code: str) -> Merged:
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
