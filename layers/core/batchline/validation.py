"""Streaming validation of a batch input file, and its split into byte-range chunks (the Plan state).

The file is read once, in reads of at most `read_size` bytes; memory holds one line, a 16-byte hash per
custom_id and the chunk list, never the file. Choices where the contract is silent:

- Lines end at `\\n` or `\\r\\n` (a lone `\\r` does not end a line); a line holding only spaces, tabs and
  `\\r` is blank. A UTF-8 BOM is skipped at the start of the file only. Line numbers are 1-based and
  physical: blank lines count.
- A field that is absent is `missing_required_parameter`; a field that is present, even as null, is judged
  by its value (`invalid_custom_id`, `invalid_method`, `url_mismatch`, `invalid_body`).
- A line reports every problem it has, in the order custom_id, method, url, body (one entry per missing
  field); only a line that is not a JSON object stops at that.
- A url without its leading slash names the same endpoint (`v1/embeddings`); otherwise it must be exact.
- method must be exactly `POST`. `body.model` is checked only when the key is present; null differs.
- A custom_id is taken at its first valid occurrence, even if that line has other problems; every later
  occurrence is a duplicate.
- JSON is strict: NaN and Infinity are rejected (they cannot be forwarded as JSON), and so is nesting deep
  enough to exhaust the parser.
- Whole-file errors (line null) come first, then line errors in line order: `max_errors` in all, and
  no more than `max_error_bytes` of them encoded (the batch item and its event must hold them).
- `file_too_large` is the only error reported for a file over the limit: with `size` known nothing is
  read, and without it reading stops one byte past the limit, so both paths give the same answer.
- `chunks` is empty whenever there is an error; the planner stops building it at the first line error or
  past `max_requests`, so a failing file cannot grow it without bound.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from batchline.models import ENDPOINTS, MAX_ERRORS, MAX_ERRORS_BYTES, BatchError, bounded_errors, canonical_path

BOM = b"\xef\xbb\xbf"
MAX_CUSTOM_ID_CHARS = 512
DUPLICATE_CUSTOM_ID_MESSAGE = (
    "The custom_id for this request is a duplicate of another request. "
    "The custom_id parameter must be unique for each request in a batch."
)

# JSON's own whitespace: a line of only these is blank; anything else must parse.
_BLANK = b" \t\r"
# Field of the body each endpoint cannot do without.
_REQUIRED_BODY_FIELD = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
    "/v1/responses": "input",
    "/v1/moderations": "input",
}
_EMBEDDINGS = "/v1/embeddings"


class Readable(Protocol):
    """What the planner needs of a stream: botocore's StreamingBody, an open binary file, BytesIO."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Chunk:
    """One Map item: a run of consecutive request lines and the exact bytes that hold them."""

    chunk: int
    first_line: int
    line_count: int
    start_byte: int
    end_byte: int


@dataclass
class Plan:
    """What validation found, and the chunk manifest when it found nothing wrong."""

    errors: list[BatchError]
    total: int
    chunks: list[Chunk]
    error_count: int

    @property
    def ok(self) -> bool:
        """True when no problem was found (counted, not just listed, so `max_errors=0` cannot hide one)."""
        return self.error_count == 0


class _TooLarge(Exception):
    """The stream went past the byte limit."""


def _blocks(stream: Readable, read_size: int, limit: int | None) -> Iterator[bytes]:
    """Yield the stream's bytes, at most `read_size` per read; raise _TooLarge past `limit` bytes."""
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
            raise _TooLarge
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


def iter_request_lines(
    stream: Readable, start_byte: int = 0, *, read_size: int = 1 << 20
) -> Iterator[tuple[int, bytes]]:
    """Yield (byte_offset, line) for each non-blank line; the stream's first byte is at `start_byte`."""
    for start, _end, line in _lines(_blocks(stream, read_size, None), start_byte, start_byte == 0):
        if line.strip(_BLANK):
            yield start, line


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode(raw: bytes) -> Any:
    """Strict UTF-8 and strict JSON; json.loads(bytes) would also take UTF-16 and lone surrogates."""
    return _DECODER.decode(raw.decode("utf-8"))


def _writable(text: str) -> bool:
    """A string UTF-8 can encode: JSON's `\\ud800` escape decodes to a lone surrogate, which it cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unwritable_string(request: dict[str, Any]) -> bool:
    """Whether any key or string of the request, its custom_id's value aside, is not writable as UTF-8."""
    stack: list[Any] = [v for k, v in request.items() if k != "custom_id"] + list(request)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not _writable(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def parse_request_line(raw: bytes) -> dict[str, Any]:
    """Decode one line that plan_batch accepted."""
    value = _decode(raw)
    if not isinstance(value, dict):
        raise ValueError("a request line must be a JSON object")
    return value


_JSON_TYPES = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "an array"}


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "an object")


def _show(value: Any) -> str:
    """A client value for a message: a string quoted and cut short (never echoed whole), else its type."""
    if not isinstance(value, str):
        return _json_type(value)
    text = json.dumps(value[:64], ensure_ascii=False)
    return text[:-1] + '…"' if len(value) > 64 else text


def _embedding_inputs(value: Any) -> int | None:
    """How many embeddings `input` asks for, or None when it is not a string or a non-empty array."""
    if isinstance(value, str):
        return 1
    if isinstance(value, list) and value:
        # A flat array of integers is one token array; otherwise each element is one input.
        return 1 if isinstance(value[0], int) else len(value)
    return None


class _Planner:
    """The state of one pass over a file: counts, custom_id hashes, errors kept, chunks built."""

    def __init__(
        self,
        endpoint: str,
        model: str | None,
        lines_per_chunk: int,
        max_errors: int,
        max_requests: int,
        max_error_bytes: int = MAX_ERRORS_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.lines_per_chunk = lines_per_chunk
        self.max_errors = max_errors
        self.max_requests = max_requests
        self.errors: list[BatchError] = []
        self.error_count = 0
        self.max_error_bytes = max_error_bytes
        self.error_bytes = 0
        self.errors_full = False
        self.total = 0
        self.embedding_inputs = 0
        # 16-byte digests: a false duplicate would fail a good batch, so 64 bits is too few at scale.
        self.custom_ids: set[bytes] = set()
        self.chunks: list[Chunk] = []
        self.chunk_start = 0
        self.chunk_end = 0

    def error(self, line: int, code: str, message: str, param: str | None = None) -> None:
        """Count a problem; keep it only while under both caps (entries, and their encoded bytes)."""
        self.error_count += 1
        if len(self.errors) < self.max_errors and not self.errors_full:
            error = BatchError(code=code, line=line, message=message, param=param)
            self.error_bytes += error.encoded_size() + 1
            if self.error_bytes > self.max_error_bytes:
                self.errors_full = True  # later entries must not fill the gap: what is kept is a prefix
            else:
                self.errors.append(error)

    def add(self, line_no: int, start: int, end: int, raw: bytes) -> None:
        """Validate one request line and, while everything is fine, extend the chunk list."""
        index = self.total
        self.total += 1
        self.check(line_no, raw)
        # Past the request limit the plan has failed too: stop growing a manifest nobody will read.
        if self.error_count or self.total > self.max_requests:
            return
        if index % self.lines_per_chunk == 0:
            self.chunk_start = start
        self.chunk_end = end
        if (index + 1) % self.lines_per_chunk == 0:
            self.close_chunk()

    def close_chunk(self) -> None:
        """Append the chunk that holds the request lines since the last one."""
        first = len(self.chunks) * self.lines_per_chunk
        self.chunks.append(
            Chunk(
                chunk=len(self.chunks),
                first_line=first,
                line_count=self.total - first,
                start_byte=self.chunk_start,
                end_byte=self.chunk_end,
            )
        )

    def check(self, line_no: int, raw: bytes) -> None:
        """Report every problem of one non-blank line."""
        try:
            request = _decode(raw)
        except UnicodeDecodeError as exc:
            self.error(line_no, "invalid_json_line", f"This line is not valid UTF-8 (byte {exc.start + 1}).")
            return
        except json.JSONDecodeError as exc:
            self.not_json(line_no, f"{exc.msg} (column {exc.colno})")
            return
        except ValueError as exc:
            self.not_json(line_no, str(exc))
            return
        except RecursionError:
            self.not_json(line_no, "it is nested too deeply")
            return
        if not isinstance(request, dict):
            self.error(line_no, "invalid_json_line", f"This line is {_json_type(request)}, not a JSON object.")
            return
        # Only an escape can make a lone surrogate (raw bytes must be strict UTF-8): look when there is one.
        if (b"\\ud" in raw or b"\\uD" in raw) and _unwritable_string(request):
            self.error(
                line_no,
                "invalid_json_line",
                "This line holds a string that cannot be written as UTF-8 (an escaped lone surrogate).",
            )
            self.check_custom_id(line_no, request)
            return
        self.check_custom_id(line_no, request)
        self.check_method(line_no, request)
        self.check_url(line_no, request)
        self.check_body(line_no, request)

    def not_json(self, line_no: int, detail: str) -> None:
        """Report a line that is UTF-8 but not JSON."""
        self.error(line_no, "invalid_json_line", f"This line is not parseable as valid JSON: {detail}.")

    def missing(self, line_no: int, param: str) -> None:
        """Report a required top-level field that is absent."""
        self.error(line_no, "missing_required_parameter", f"Missing required parameter: '{param}'.", param)

    def check_custom_id(self, line_no: int, request: dict[str, Any]) -> None:
        """custom_id: present, a non-empty string of at most 512 characters, unique in the file."""
        if "custom_id" not in request:
            self.missing(line_no, "custom_id")
            return
        custom_id = request["custom_id"]
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID_CHARS:
            got = f"a string of {len(custom_id)} characters" if isinstance(custom_id, str) else _show(custom_id)
            self.error(
                line_no,
                "invalid_custom_id",
                f"Invalid 'custom_id': expected a non-empty string of at most {MAX_CUSTOM_ID_CHARS} "
                f"characters, got {got}.",
                "custom_id",
            )
            return
        if not _writable(custom_id):
            self.error(
                line_no,
                "invalid_custom_id",
                "Invalid 'custom_id': it holds an escaped lone surrogate, which cannot be written as UTF-8.",
                "custom_id",
            )
            return
        digest = hashlib.blake2b(custom_id.encode("utf-8"), digest_size=16).digest()
        if digest in self.custom_ids:
            self.error(line_no, "duplicate_custom_id", DUPLICATE_CUSTOM_ID_MESSAGE, "custom_id")
        else:
            self.custom_ids.add(digest)

    def check_method(self, line_no: int, request: dict[str, Any]) -> None:
        """method: exactly POST."""
        if "method" not in request:
            self.missing(line_no, "method")
        elif request["method"] != "POST":
            self.error(
                line_no,
                "invalid_method",
                f"Invalid 'method': only POST is supported, got {_show(request['method'])}.",
                "method",
            )

    def check_url(self, line_no: int, request: dict[str, Any]) -> None:
        """url: the batch's endpoint."""
        if "url" not in request:
            self.missing(line_no, "url")
            return
        url = request["url"]
        if not isinstance(url, str) or canonical_path(url) != self.endpoint:
            self.error(
                line_no,
                "url_mismatch",
                f"The url {_show(url)} does not match the batch's endpoint '{self.endpoint}'.",
                "url",
            )

    def check_body(self, line_no: int, request: dict[str, Any]) -> None:
        """body: an object with what the endpoint needs, and no other model than the job's."""
        if "body" not in request:
            self.missing(line_no, "body")
            return
        body = request["body"]
        if not isinstance(body, dict):
            self.error(
                line_no,
                "invalid_body",
                f"Invalid 'body': expected an object, got {_json_type(body)}.",
                "body",
            )
            return
        field = _REQUIRED_BODY_FIELD[self.endpoint]
        value = body.get(field)
        if self.endpoint == _EMBEDDINGS:
            count = _embedding_inputs(value)
            valid = count is not None
            self.embedding_inputs += count or 0
            need = "a string or a non-empty array"
        elif self.endpoint == "/v1/chat/completions":
            valid = isinstance(value, list) and bool(value)
            need = "a non-empty array of messages"
        else:
            valid = isinstance(value, str | list)
            need = "a string or an array"
        if not valid:
            if field not in body:
                got = "it is missing"
            elif isinstance(value, list) and not value:
                got = "got an empty array"
            else:
                got = f"got {_json_type(value)}"
            self.error(
                line_no,
                "invalid_body",
                f"Invalid 'body.{field}': {self.endpoint} needs {need}; {got}.",
                f"body.{field}",
            )
        if self.model is not None and "model" in body and body["model"] != self.model:
            self.error(
                line_no,
                "model_mismatch",
                f"The model {_show(body['model'])} does not match the job's model '{self.model}'.",
                "body.model",
            )

    def whole_file_errors(self, max_embedding_inputs: int) -> list[BatchError]:
        """The problems of the file as a whole, known once every line is read."""
        found: list[BatchError] = []
        if self.total == 0:
            found.append(BatchError(code="empty_file", message="The batch input file has no requests."))
        if self.total > self.max_requests:
            found.append(
                BatchError(
                    code="too_many_tasks",
                    message=f"The batch has {self.total} requests; the maximum is {self.max_requests}.",
                )
            )
        if self.endpoint == _EMBEDDINGS and self.embedding_inputs > max_embedding_inputs:
            found.append(
                BatchError(
                    code="too_many_embedding_inputs",
                    message=f"The batch has {self.embedding_inputs} embedding inputs in all; "
                    f"the maximum is {max_embedding_inputs}.",
                )
            )
        return found


def _too_large(max_bytes: int) -> Plan:
    """The plan of a file over the byte limit: that one error, nothing else."""
    error = BatchError(
        code="file_too_large",
        message=f"The batch input file is larger than the maximum of {max_bytes} bytes.",
    )
    return Plan(errors=[error], total=0, chunks=[], error_count=1)


def plan_batch(
    stream: Readable,
    *,
    endpoint: str,
    model: str | None,
    lines_per_chunk: int = 100,
    size: int | None = None,
    max_errors: int = MAX_ERRORS,
    max_error_bytes: int = MAX_ERRORS_BYTES,
    max_bytes: int = 200 * 1024 * 1024,
    max_requests: int = 50_000,
    max_embedding_inputs: int = 50_000,
    read_size: int = 1 << 20,
) -> Plan:
    """Validate a batch input file in one streamed pass and cut it into chunks of `lines_per_chunk`."""
    endpoint = canonical_path(endpoint)
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    if lines_per_chunk < 1:
        raise ValueError("lines_per_chunk must be at least 1")
    if size is not None and size > max_bytes:
        return _too_large(max_bytes)
    planner = _Planner(endpoint, model, lines_per_chunk, max_errors, max_requests, max_error_bytes)
    line_no = 0
    try:
        for start, end, raw in _lines(_blocks(stream, read_size, max_bytes), 0, skip_bom=True):
            line_no += 1
            if raw.strip(_BLANK):
                planner.add(line_no, start, end, raw)
    except _TooLarge:
        return _too_large(max_bytes)
    found = planner.whole_file_errors(max_embedding_inputs)
    if planner.error_count == 0 and not found and planner.total % lines_per_chunk:
        planner.close_chunk()
    error_count = len(found) + planner.error_count
    return Plan(
        errors=bounded_errors(found + planner.errors, max_count=max_errors, max_bytes=max_error_bytes),
        total=planner.total,
        chunks=planner.chunks if error_count == 0 else [],
        error_count=error_count,
    )
