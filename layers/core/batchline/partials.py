"""Partial results: a batch's output and error lines committed so far, a page at a time, by an opaque cursor.

Chunks progress concurrently, so the cursor holds a position per chunk (its lines already returned): the
count of chunks read to their end, then (chunk, lines) for the chunks after it that were read in part.
Within a chunk, lines come in input order: each segment's output and error lines interleaved by its
`runs`. While the batch runs only committed segments count; once it has ended, what finalize merged
counts (its pending segments too) and each chunk's unanswered tail comes from the input, through
finalize's own code, so the lines read to the end are the lines of the output and error files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice

from batchline import finalizing, layout, merging
from batchline.errors import Conflict, InvalidRequest, NotFound, ServerError
from batchline.models import BatchRecord, Merged, SegmentRecord
from batchline.store import Store

# A Lambda answer is at most 6 MB, and API Gateway's JSON escaping can double a line: 2 MiB of lines fits.
PAGE_BYTES = 2 * 1024 * 1024
# Chunks started in part that one cursor may hold besides the first unfinished one: a few KB of query string.
MAX_PARTIAL_CHUNKS = 512
MAX_CURSOR_CHARS = 8192
_MAX_PAYLOAD = 64 * 1024
_VERSION = 1
_CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Cursor:
    """Chunks 0..done-1 read to their end; `read`: lines returned of the later chunks read in part."""

    done: int = 0
    read: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """One answer: its lines, the cursor for the next call, and whether any line can still come."""

    lines: list[bytes]
    cursor: str
    has_more: bool


# ------------------------------------------------------------------------------------------ the cursor
def _tag(batch_id: str) -> bytes:
    """Binds a cursor to its batch: another batch's cursor is refused, not misread."""
    return hashlib.sha256(batch_id.encode()).digest()[:4]


def _put_varint(out: bytearray, value: int) -> None:
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return


def _payload(batch_id: str, cursor: Cursor) -> bytes:
    out = bytearray([_VERSION, *_tag(batch_id)])
    _put_varint(out, cursor.done)
    previous = cursor.done - 1
    for chunk, lines in sorted(cursor.read.items()):
        _put_varint(out, chunk - previous - 1)  # chunks ascend, each after `done`: the gap is never negative
        _put_varint(out, lines)
        previous = chunk
    return bytes(out)


def encode(batch_id: str, cursor: Cursor) -> str:
    """The cursor as the answer's header carries it: compressed, base64url without padding."""
    return base64.urlsafe_b64encode(zlib.compress(_payload(batch_id, cursor), 9)).rstrip(b"=").decode()


def _bad_cursor(detail: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for 'after': {detail}.", param="after")


def _varints(data: bytes, start: int) -> Iterator[int]:
    value = shift = 0
    for byte in data[start:]:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            yield value
            value = shift = 0
    if shift:
        raise _bad_cursor("not a cursor this route gave")


def decode(batch_id: str, text: str) -> Cursor:
    """The cursor `encode` made for this batch; 422 naming `after` for anything else."""
    if len(text) > MAX_CURSOR_CHARS or not _CURSOR_CHARS.fullmatch(text):
        raise _bad_cursor("not a cursor this route gave")
    try:
        inflater = zlib.decompressobj()
        payload = inflater.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), _MAX_PAYLOAD)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise _bad_cursor("not a cursor this route gave") from exc
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data or len(payload) < 5:
        raise _bad_cursor("not a cursor this route gave")
    if payload[0] != _VERSION or payload[1:5] != _tag(batch_id):
        raise _bad_cursor("a cursor of another batch, or of another version of this route")
    numbers = list(_varints(payload, 5))
    if not numbers or len(numbers) % 2 != 1:
        raise _bad_cursor("not a cursor this route gave")
    done, read, chunk = numbers[0], {}, numbers[0] - 1
    for gap, lines in zip(numbers[1::2], numbers[2::2], strict=True):
        chunk += gap + 1
        read[chunk] = lines
    cursor = Cursor(done, read)
    # One spelling per position: a chunk read in part holds lines, and nothing is encoded longer than needed.
    if 0 in read.values() or _payload(batch_id, cursor) != payload:
        raise _bad_cursor("not a cursor this route gave")
    return cursor


# ------------------------------------------------------------------------------------------ the lines
class _Page:
    """Result lines up to `bound` bytes (a line alone may be more; an unsent line may pass it once)."""

    def __init__(self, bound: int) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self._bound = bound
        self._closed = False

    def take(self, line: bytes) -> bool:
        """Add the line if it fits (the first always does); False closes the page."""
        if self.lines and self.size + len(line) > self._bound:
            self._closed = True
            return False
        self.write(line)
        return True

    def write(self, data: bytes) -> None:
        self.lines.append(data)
        self.size += len(data)

    def full(self) -> bool:
        return self._closed or self.size >= self._bound


def interleave(out: Iterator[bytes], err: Iterator[bytes], runs: list[int] | None) -> Iterator[bytes]:
    """A segment's lines in input order: `runs` alternate output and error lines; None: output, then errors."""
    if runs is None:
        yield from out
        yield from err
        return
    for index, run in enumerate(runs):
        yield from islice(err if index % 2 else out, run)


def _part_lines(store: Store, key: str | None) -> Generator[bytes]:
    """A part file's lines, each with its newline; opened on the first line asked for."""
    if key is None:
        return
    rest = b""
    for block in store.objects.stream(key, merging.READ_BLOCK):
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def _read_segment(store: Store, segment: SegmentRecord, position: int, page: _Page) -> int:
    """The segment's lines from chunk line `position` on, while the page takes them; the position reached."""
    start = position
    with closing(_part_lines(store, segment.out_key)) as out, closing(_part_lines(store, segment.err_key)) as err:
        lines = interleave(out, err, segment.runs)
        for line in islice(lines, position - segment.cursor, segment.next_cursor - segment.cursor):
            if not page.take(line):
                return position
            position += 1
    if position < segment.next_cursor:
        raise ServerError(
            f"Segment {segment.chunk}/{segment.cursor} of {segment.batch_id} holds fewer lines than it covers "
            f"(read {position - start} from line {start})."
        )
    return position


def _input_present(store: Store, batch: BatchRecord) -> None:
    """Unsent lines come from the input: once the tenant deleted it, only the error file still has them."""
    try:
        store.files.get(batch.tenant_id, batch.input_file_id)
    except NotFound as exc:
        raise Conflict(
            "The batch's input file is gone, so its unanswered lines cannot be read here; "
            "they are in its error file (error_file_id).",
        ) from exc


@dataclass(frozen=True)
class _Chunk:
    """A chunk as a reader sees it: its lines, how many can be read now, and how to read from a position."""

    line_count: int
    end: int
    read: Callable[[int, _Page], int]


def _read_chunk(
    store: Store,
    batch: BatchRecord,
    segments: list[SegmentRecord],
    left: merging.Left,
    unsent_code: str | None,
    position: int,
    page: _Page,
) -> int:
    """A chunk's lines from `position` on: its chain's, then (once ended) its unsent tail; the position reached."""
    for segment in segments:
        if segment.next_cursor <= position:
            continue
        if page.full():
            return position
        position = _read_segment(store, segment, position, page)
        if position < segment.next_cursor:
            return position
    if unsent_code is None or position >= left.chunk.line_count or page.full():
        return position
    _input_present(store, batch)
    written = Merged()
    tail = replace(left, skip=position - left.covered)
    merging.answer_left(store, batch, tail, page, unsent_code, written, page.full)
    return position + written.unsent


def _read_unplanned(store: Store, batch: BatchRecord, unsent_code: str, position: int, page: _Page) -> int:
    """A batch stopped before it started: an unsent line for each input line, as finalize wrote them."""
    _input_present(store, batch)
    body = store.objects.open(layout.file_key(batch.tenant_id, batch.input_file_id))
    return position + merging.unsent(body, batch.id, (0, 0), position, page, unsent_code, page.full)


def _chunks(store: Store, batch: BatchRecord) -> list[_Chunk]:
    """What can be read of each chunk now."""
    merged = batch.closing.merged if batch.closing is not None else None
    # Finalize has merged (and recorded how) once the batch has ended; a batch that failed validation never
    # reached it, and has no lines.
    code = batch.closing.unsent_code if batch.closing is not None and merged is not None else None
    ended = batch.status in finalizing.TERMINAL and code is not None
    if batch.in_progress_at is None:
        # Never started, so no worker ran: once ended, every input line is unsent (finalize wrote as many).
        if not ended or merged is None or code is None or not merged.unsent:
            return []
        return [_Chunk(merged.unsent, merged.unsent, partial(_read_unplanned, store, batch, code))]
    chunks = merging.manifest(store, batch)
    if chunks is None:
        raise ServerError(f"Batch {batch.id} started without a manifest.")
    by_chunk: dict[int, list[SegmentRecord]] = defaultdict(list)
    for segment in store.segments.of_batch(batch.id):
        if ended or not segment.pending:
            by_chunk[segment.chunk].append(segment)
    found = []
    for chunk in chunks:
        segments, left = merging.chain(chunk, by_chunk[chunk.chunk])
        end = chunk.line_count if ended else left.covered
        reader = partial(_read_chunk, store, batch, segments, left, code if ended else None)
        found.append(_Chunk(chunk.line_count, end, reader))
    return found


def _check(cursor: Cursor, chunks: list[_Chunk]) -> None:
    """A position is never past what can be read: a cursor that says so was not made for this batch."""
    if cursor.done > len(chunks) or any(chunk.end < chunk.line_count for chunk in chunks[: cursor.done]):
        raise _bad_cursor("past the lines this batch has answered")
    for index, lines in cursor.read.items():
        if index >= len(chunks) or lines > chunks[index].end:
            raise _bad_cursor("past the lines this batch has answered")


def _normalized(done: int, read: dict[int, int], chunks: list[_Chunk]) -> Cursor:
    while done < len(chunks) and read.get(done, 0) >= chunks[done].line_count:
        done += 1
    return Cursor(done, {index: lines for index, lines in read.items() if index >= done and lines})


def read(store: Store, tenant_id: str, batch_id: str, after: str | None, *, page_bytes: int = PAGE_BYTES) -> Page:
    """The lines `after` has not returned yet, at most about `page_bytes` of them, and the next cursor."""
    batch = store.batches.get(tenant_id, batch_id)
    cursor = decode(batch_id, after) if after is not None else Cursor()
    chunks = _chunks(store, batch)
    _check(cursor, chunks)
    page = _Page(page_bytes)
    positions = dict(cursor.read)
    for index in range(cursor.done, len(chunks)):
        if page.full():
            break
        position = positions.get(index, 0)
        if position >= chunks[index].end:
            continue
        # Starting many chunks at once would make the cursor long: past the limit, only the first unfinished.
        if not position and index != cursor.done and len(positions) >= MAX_PARTIAL_CHUNKS:
            continue
        positions[index] = chunks[index].read(position, page)
    following = _normalized(cursor.done, positions, chunks)
    has_more = batch.status not in finalizing.TERMINAL or following.done < len(chunks)
    return Page(page.lines, encode(batch_id, following), has_more)
