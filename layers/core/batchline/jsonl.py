"""Reading a JSONL stream: its physical lines with their byte offsets, and strict JSON for each line.

The stream is read in reads of at most `read_size` bytes; memory holds one line, never the file.
Choices where the contract is silent:

- Lines end at `\\n` or `\\r\\n` (a lone `\\r` does not end a line); a line holding only spaces, tabs and
  `\\r` is blank. A UTF-8 BOM is skipped at the start of the file only. Line numbers are 1-based and
  physical: blank lines count.
- Past a byte limit reading stops one byte after it (`TooLarge`), so a file's size is never taken on trust.
- JSON is strict: UTF-8 only, and NaN and Infinity are rejected (they cannot be forwarded as JSON), written
  out or as a number that overflows a double (`1e999`), which Python's json would read as infinity.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

BOM = b"\xef\xbb\xbf"
# JSON's own whitespace: a line of only these is blank; anything else must parse.
BLANK = b" \t\r"


class Readable(Protocol):
    """What the reader needs of a stream: botocore's StreamingBody, an open binary file, BytesIO."""

    def read(self, size: int, /) -> bytes: ...


class TooLarge(Exception):
    """The stream went past the byte limit."""


def _blocks(stream: Readable, read_size: int, limit: int | None) -> Iterator[bytes]:
    """Yield the stream's bytes, at most `read_size` per read; raise TooLarge past `limit` bytes."""
    if read_size < 1:
        raise ValueError("read_size must be at least 1")
    seen = 0
    while True:
        # One byte past the limit is enough to know the file is too large; never read further.
        want = read_size if limit is None else min(read_size, limit + 1 - seen)
        block = stream.read(want)
        if not block:
            return
        seen += len(block)
        if limit is not None and seen > limit:
            raise TooLarge
        yield block


def _lines(blocks: Iterator[bytes], offset: int, skip_bom: bool) -> Iterator[tuple[int, int, bytes]]:
    """Yield (start, end, line) for every physical line, blank ones too; `end` is past the terminator."""
    if skip_bom:
        head = b""
        # A BOM may straddle tiny reads; gather three bytes before deciding.
        for block in blocks:
            head += block
            if len(head) >= len(BOM):
                break
        if head.startswith(BOM):
            head = head[len(BOM) :]
            offset += len(BOM)
        blocks = _prepend(head, blocks)
    pending: list[bytes] = []
    for block in blocks:
        pieces = block.split(b"\n")
        if len(pieces) == 1:
            # Kept as pieces and joined once: re-joining a long line on every small read is quadratic.
            pending.append(block)
            continue
        if pending:
            pending.append(pieces[0])
            pieces[0] = b"".join(pending)
            pending = []
        tail = pieces.pop()
        for line in pieces:
            end = offset + len(line) + 1
            yield offset, end, line[:-1] if line.endswith(b"\r") else line
            offset = end
        if tail:
            pending.append(tail)
    if pending:
        # A final line without a terminator is still a line.
        line = b"".join(pending)
        yield offset, offset + len(line), line


def _prepend(head: bytes, blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Yield `head` (when not empty), then the rest of `blocks`."""
    if head:
        yield head
    yield from blocks


def numbered_lines(
    stream: Readable, *, max_bytes: int | None = None, read_size: int = 1 << 20
) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield (line number, start, end, line) for each non-blank line of a whole file, BOM skipped.

    `end` is past the terminator. Raises TooLarge once the stream goes past `max_bytes`.
    """
    for number, (start, end, line) in enumerate(_lines(_blocks(stream, read_size, max_bytes), 0, skip_bom=True), 1):
        if line.strip(BLANK):
            yield number, start, end, line


def iter_request_lines(
    stream: Readable, start_byte: int = 0, *, read_size: int = 1 << 20
) -> Iterator[tuple[int, int, bytes]]:
    """Yield (start, end, line) for each non-blank line; the stream's first byte is at `start_byte`.

    `end` is past the terminator: where a reader that stops after this line starts again.
    """
    return request_lines(_blocks(stream, read_size, None), start_byte)


def request_lines(blocks: Iterable[bytes], start_byte: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """iter_request_lines over bytes that come in blocks (ranged reads); the first byte is at `start_byte`."""
    for start, end, line in _lines(iter(blocks), start_byte, start_byte == 0):
        if line.strip(BLANK):
            yield start, end, line


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not valid JSON")


# How much of an out-of-range number a message shows: a line may hold one of thousands of digits.
_SHOWN_DIGITS = 20


def _finite_float(text: str) -> float:
    """Refuse a number past a double's range: json reads it as infinity, which goes on as null or Infinity,
    never as the number the line holds. Underflow is kept: it reads as 0.0, as any reader of doubles does."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= _SHOWN_DIGITS else text[:_SHOWN_DIGITS] + "..."
        raise ValueError(f"{shown} is out of range (it overflows to infinity, which JSON cannot carry)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def decode(raw: bytes) -> Any:
    """Strict UTF-8 and strict JSON; json.loads(bytes) would also take UTF-16 and lone surrogates."""
    return _DECODER.decode(raw.decode("utf-8"))


# orjson reads an integer past 64 bits as a float; one needs at least 20 digits in a row.
_LONG_DIGITS = re.compile(rb"\d{20}")


def loads(raw: bytes, fallback: Callable[[bytes], Any] = json.loads) -> Any:
    """What `fallback(raw)` gives, from orjson (several times faster) wherever orjson gives the same."""
    if not _LONG_DIGITS.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # what orjson refuses the fallback may take: a lone surrogate's escape, UTF-16
    return fallback(raw)


def parse_request_line(raw: bytes) -> dict[str, Any]:
    """Decode one line that planning accepted, as `decode` would."""
    value = loads(raw, decode)
    if not isinstance(value, dict):
        raise ValueError("a request line must be a JSON object")
    return value
