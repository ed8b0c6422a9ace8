"""Plan: validate a batch's input in one streamed pass, cut it into chunks, and write the manifest or fail the batch.

`plan_batch` walks the lines `jsonl` reads, applies the `rules` to each, and cuts the request lines into
byte-range chunks. Step Functions bills per state transition, so chunks are sized to the job's
concurrency, not to a line count: as many chunks as the batch runs workers at once, each a share of
the file's bytes, and each worker runs its chunk across as many invocations as it takes. A job (or
the stack) may still ask for small chunks, down to one line, where isolation matters more than cost.
Memory holds one line, a 16-byte hash per custom_id and the chunk list, never the file. Choices
where the contract is silent:

- Whole-file errors (line null) come first, then line errors in line order: `max_errors` in all, and
  no more than `max_error_bytes` of them encoded (the batch item and its event must hold them).
- `file_too_large` is the only error reported for a file over the limit: with `size` known nothing is
  read, and without it reading stops one byte past the limit, so both paths give the same answer.
- `chunks` is empty whenever there is an error; chunks stop being cut at the first line error or
  past `max_requests`, so a failing file cannot grow the list without bound.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from batchline.errors import Conflict, EnqueuedLimitReached, NotFound
from batchline.file_rules import file_too_large, whole_file_errors
from batchline.jsonl import Readable, TooLarge, numbered_lines
from batchline.layout import manifest_key
from batchline.models import (
    ENDPOINTS,
    MAX_ENQUEUED_REQUESTS,
    MAX_ERRORS,
    MAX_ERRORS_BYTES,
    BatchError,
    BatchErrors,
    BatchRecord,
    Chunk,
    bounded_errors,
    canonical_path,
)
from batchline.observability import logger
from batchline.rules import LineRules, Problem
from batchline.store import Store


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


class _LineErrors:
    """Every line problem counted; the first kept while under both caps (entries, and their encoded bytes)."""

    def __init__(self, max_errors: int, max_error_bytes: int) -> None:
        self.max_errors = max_errors
        self.max_error_bytes = max_error_bytes
        self.kept: list[BatchError] = []
        self.count = 0
        self.kept_bytes = 0
        self.full = False

    def add(self, line: int, problem: Problem) -> None:
        self.count += 1
        if len(self.kept) < self.max_errors and not self.full:
            error = BatchError(code=problem.code, line=line, message=problem.message, param=problem.param)
            self.kept_bytes += error.encoded_size() + 1
            if self.kept_bytes > self.max_error_bytes:
                self.full = True  # later entries must not fill the gap: what is kept is a prefix
            else:
                self.kept.append(error)


class _Chunks:
    """The manifest being cut: consecutive request lines, up to `lines_per_chunk` or `chunk_bytes` a chunk."""

    def __init__(self, lines_per_chunk: int, chunk_bytes: int | None) -> None:
        self.lines_per_chunk = lines_per_chunk
        self.chunk_bytes = chunk_bytes
        self.chunks: list[Chunk] = []
        self.first: int | None = None  # the open chunk's first request line
        self.start = 0
        self.end = 0

    def add(self, index: int, start: int, end: int) -> None:
        """Take request line number `index` (0-based), whose bytes are [start, end)."""
        if self.first is None:
            self.first, self.start = index, start
        self.end = end
        full = index + 1 - self.first >= self.lines_per_chunk
        if full or (self.chunk_bytes is not None and end - self.start >= self.chunk_bytes):
            self.close(index + 1)

    def close(self, total: int) -> None:
        """End the open chunk, if any, after `total` request lines."""
        if self.first is None:
            return
        self.chunks.append(
            Chunk(
                chunk=len(self.chunks),
                first_line=self.first,
                line_count=total - self.first,
                start_byte=self.start,
                end_byte=self.end,
            )
        )
        self.first = None


def _too_large(max_bytes: int) -> Plan:
    """The plan of a file over the byte limit: that one error, nothing else."""
    return Plan(errors=[file_too_large(max_bytes)], total=0, chunks=[], error_count=1)


def plan_batch(
    stream: Readable,
    *,
    endpoint: str,
    model: str | None,
    aliases: frozenset[str] = frozenset(),
    lines_per_chunk: int = 100,
    chunk_bytes: int | None = None,
    size: int | None = None,
    max_errors: int = MAX_ERRORS,
    max_error_bytes: int = MAX_ERRORS_BYTES,
    max_bytes: int = 200 * 1024 * 1024,
    max_requests: int = 50_000,
    max_embedding_inputs: int = 50_000,
    read_size: int = 1 << 20,
) -> Plan:
    """Validate a batch input file in one streamed pass and cut it into chunks.

    A chunk ends at `lines_per_chunk` lines, or once it holds `chunk_bytes` (when given), whichever
    comes first: `plan` sizes chunks by bytes so that there are about as many as can run at once.
    """
    endpoint = canonical_path(endpoint)
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    if lines_per_chunk < 1:
        raise ValueError("lines_per_chunk must be at least 1")
    if size is not None and size > max_bytes:
        return _too_large(max_bytes)
    rules = LineRules(endpoint, model, aliases)
    errors = _LineErrors(max_errors, max_error_bytes)
    chunks = _Chunks(lines_per_chunk, chunk_bytes)
    total = 0
    try:
        for line_no, start, end, raw in numbered_lines(stream, max_bytes=max_bytes, read_size=read_size):
            total += 1
            for problem in rules.check(raw):
                errors.add(line_no, problem)
            # Past the request limit the plan has failed too: stop growing a manifest nobody will read.
            if not errors.count and total <= max_requests:
                chunks.add(total - 1, start, end)
    except TooLarge:
        return _too_large(max_bytes)
    found = whole_file_errors(rules, total, max_requests=max_requests, max_embedding_inputs=max_embedding_inputs)
    if errors.count == 0 and not found:
        chunks.close(total)
    error_count = len(found) + errors.count
    return Plan(
        errors=bounded_errors(found + errors.kept, max_count=max_errors, max_bytes=max_error_bytes),
        total=total,
        chunks=chunks.chunks if error_count == 0 else [],
        error_count=error_count,
    )


def map_concurrency(max_concurrency: int, requests_per_worker: int, worker_concurrency: int) -> int:
    """Chunks in flight so that all their workers together keep about the job's requests in flight.

    Never more than `worker_concurrency`: each chunk in flight is a worker invocation, and Lambda's
    concurrency is the account's, shared with every other function and batch.
    """
    wanted = math.ceil(max_concurrency / min(max_concurrency, requests_per_worker))
    return max(1, min(wanted, worker_concurrency))


def plan(
    store: Store,
    batch_id: str,
    *,
    lines_per_chunk: int,
    requests_per_worker: int,
    worker_concurrency: int = 100,
    enqueued_requests: int = MAX_ENQUEUED_REQUESTS,
) -> dict[str, Any]:
    """validating -> in_progress with a manifest, or -> failed with `errors.data`. Safe to run again.

    `lines_per_chunk` is the stack's most lines a chunk holds; a job's own `sla.lines_per_chunk`
    lowers it. `enqueued_requests` is the stack's default for the lines a tenant's non-terminal
    batches hold; a tenant's own limit replaces it.
    """
    batch = store.batches.get_unscoped(batch_id)
    job = store.jobs.get_unscoped(batch.job_id)
    parallel = map_concurrency(job.sla.max_concurrency, requests_per_worker, worker_concurrency)
    answer: dict[str, Any] = {
        "status": batch.status,
        "manifest_key": manifest_key(batch_id),
        "max_concurrency": parallel,
        "job_id": job.id,
    }
    if batch.status != "validating":
        # A retry after the status change, or a cancel that came first: report where the batch is.
        return answer
    try:
        source = store.files.get(batch.tenant_id, batch.input_file_id)
    except NotFound:
        return _fail(store, batch, [BatchError(code="missing_input_file", message="The input file is gone.")])
    body = store.objects.open(source.s3_key)
    try:
        result = plan_batch(
            body,
            endpoint=batch.endpoint,
            model=job.model,
            aliases=frozenset(job.model_aliases),
            lines_per_chunk=min(lines_per_chunk, job.sla.lines_per_chunk or lines_per_chunk),
            # Each of the `parallel` workers a share of the bytes: the file is `parallel` chunks, or fewer.
            chunk_bytes=-(-source.bytes // parallel) if source.bytes else None,
            size=source.bytes,
        )
    finally:
        body.close()
    logger.info("Planned", extra={"batch_id": batch_id, "requests": result.total, "problems": result.error_count})
    if not result.ok:
        return _fail(store, batch, result.errors)
    store.objects.put_bytes(
        manifest_key(batch_id),
        json.dumps([asdict(chunk) for chunk in result.chunks]).encode(),
        content_type="application/json",
    )
    limit = store.tenants.get(batch.tenant_id).limits.enqueued_requests or enqueued_requests
    try:
        store.batches.start(batch, result.total, enqueued_limit=limit)
    except EnqueuedLimitReached as exc:
        # As OpenAI's enqueued limits: the batch fails in validation, with no line to blame.
        return _fail(store, batch, [BatchError(code="request_limit_exceeded", message=exc.message)])
    except Conflict:
        answer["status"] = store.batches.get_unscoped(batch_id).status
        return answer
    answer["status"] = "in_progress"
    return answer


def _fail(store: Store, batch: BatchRecord, errors: list[BatchError]) -> dict[str, Any]:
    """The file's content is invalid: the batch fails with the problems listed, and runs nothing."""
    try:
        batch = store.batches.set_status(
            batch.id,
            "failed",
            allowed_from=["validating"],
            fields={"errors": BatchErrors(data=errors).model_dump()},
        )
    except Conflict:
        batch = store.batches.get_unscoped(batch.id)
    return {"status": batch.status, "manifest_key": None, "max_concurrency": 1, "job_id": batch.job_id}
