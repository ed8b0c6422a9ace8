"""Worker: send one chunk's requests to the model, many in flight, and record what each line got.

An invocation answers a contiguous run of the chunk's lines, [cursor, next_cursor), and records it as
one segment: part files first, then the segment's own item (kept, `pending`), then one transaction
that commits it and adds its counts to the batch. A commit DynamoDB cancels for contention on the
batch item is retried here, with jittered backoff; if it keeps failing the invocation fails, and the
next one at that cursor finds the kept segment and commits it without sending a line again (finalize
merges a kept segment nobody committed). An invocation that dies before keeping its segment is simply
done again. The lines it did not reach are the next invocation's (the state machine loops until
`done`); lines that a cancel or the window's end stops are answered by finalize.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from batchline.budget import Tuning
from batchline.errors import ServerError
from batchline.jsonl import iter_request_lines, parse_request_line
from batchline.layout import file_key, part_keys
from batchline.models import BatchRecord, Chunk, JobRecord, SegmentRecord, canonical_path
from batchline.models.batches import USAGE_PATHS
from batchline.observability import logger
from batchline.pacing import Limiter, Pacer
from batchline.providers import Outcome, Provider
from batchline.providers.retry import observing_attempts
from batchline.result_lines import result_line
from batchline.store import Store

ProviderFactory = Callable[[JobRecord], Provider]
Span = tuple[int, int, bytes]  # a request line's start and end bytes in the input, and the line

# A commit cancelled for a conflict is tried again after a jittered wait, up to about 10 s in all.
COMMIT_ATTEMPTS = 8
COMMIT_BACKOFF_BASE = 0.05
COMMIT_BACKOFF_CAP = 2.0


def stopped_reason(status: str, expires_at: float | None, now: float) -> str | None:
    """Why no more requests may be sent for a batch in this status, if that is so."""
    if status in ("cancelling", "cancelled"):
        return "cancelled"
    if status != "in_progress":
        return status
    if expires_at is not None and now >= expires_at:
        return "expired"
    return None


async def _read_ahead(lines: Iterator[Span], count: int = 256) -> AsyncIterator[Span]:
    """The lines, read off the event loop a few at a time: S3 is read while requests are in flight."""
    while batch := await asyncio.to_thread(list, islice(lines, count)):
        for line in batch:
            yield line


@dataclass
class _Segment:
    """The answers of one invocation, in input order."""

    lines: list[tuple[bool, bytes]] = field(default_factory=list)
    usage: list[int] = field(default_factory=lambda: [0] * len(USAGE_PATHS))
    end: int = 0  # the input byte just past the last line answered: where the next invocation reads from


class ChunkRun:
    """One invocation over one chunk, from `cursor`."""

    def __init__(
        self,
        store: Store,
        providers: ProviderFactory,
        *,
        requests_in_flight: int,
        remaining_seconds: Callable[[], float],
        reserve_seconds: float,
        status_check_interval: float = 2.0,
        segment_bytes: int = 8 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random.random,
        commit_attempts: int = COMMIT_ATTEMPTS,
        budget: Tuning | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.requests_in_flight = requests_in_flight
        self.remaining_seconds = remaining_seconds
        # Time kept free at the end: one upstream attempt may still be running when sending stops.
        self.reserve_seconds = reserve_seconds
        self.status_check_interval = status_check_interval
        self.segment_bytes = segment_bytes
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.random = random
        self.commit_attempts = commit_attempts
        # The job's concurrency budget, shared with every worker of the job's batches; None: this worker
        # alone keeps `requests_in_flight` (tests that drive one worker by hand).
        self.budget = budget

    def run(
        self, batch_id: str, chunk: Chunk, cursor: int, *, job_id: str | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        """Answer lines from `cursor` (at byte `offset`) on; `{cursor, offset, done}` for the state machine's loop."""
        if job_id is None:  # a run planned before the payload named its job
            job_id = self.store.batches.get_unscoped(batch_id).job_id
        kept, batch, job = self.store.invocation(batch_id, job_id, chunk.chunk, cursor)
        if kept is not None:
            # Answered before; if its commit failed, commit it now: never send its lines again.
            return self._commit(batch_id, kept)
        if cursor >= chunk.line_count or stopped_reason(batch.status, batch.expires_at, self.clock()):
            return {"cursor": cursor, "offset": offset, "done": True}
        return asyncio.run(self._run(batch, job, chunk, cursor, offset))

    async def _run(
        self, batch: BatchRecord, job: JobRecord, chunk: Chunk, cursor: int, offset: int | None
    ) -> dict[str, Any]:
        start = chunk.start_byte if offset is None else offset
        # Streamed: a chunk may be the whole file; an invocation holds only what it has answered.
        body = self.store.objects.read_range(file_key(batch.tenant_id, batch.input_file_id), start, chunk.end_byte)
        try:
            lines = iter_request_lines(body, start)
            if offset is None:
                lines = islice(lines, cursor, None)  # a cursor from before offsets were kept: skip to it
            provider = self.providers(job)
            try:
                # What is left of the chunk bounds what it asks of the job's budget (a 2-line chunk wants 2).
                # Nor more than the job allows one batch: a worker never holds more than its job's concurrency.
                want = min(self.requests_in_flight, job.sla.max_concurrency, chunk.line_count - cursor)
                answered, stopped = await self._send_all(batch, provider, lines, self._pacer(batch, job), want)
            finally:
                await provider.aclose()
        finally:
            body.close()
        next_cursor = cursor + len(answered.lines)
        done = stopped or next_cursor >= chunk.line_count
        if not answered.lines:
            # Nothing to record: a segment of no lines would make every later try at this cursor
            # answer "no progress" and loop forever. The next invocation starts here afresh.
            return {"cursor": cursor, "offset": offset, "done": done}
        return self._record(batch.id, chunk.chunk, (cursor, next_cursor, answered.end), done, answered)

    def _pacer(self, batch: BatchRecord, job: JobRecord) -> Pacer | None:
        if self.budget is None:
            return None
        holder = f"{batch.id}#{secrets.token_hex(4)}"  # one invocation, one lease
        return Pacer(self.store.budgets, job, batch, tuning=self.budget, holder=holder, clock=self.clock,
                     monotonic=self.monotonic)  # fmt: skip

    async def _send_all(
        self,
        batch: BatchRecord,
        provider: Provider,
        lines: Iterator[Span],
        pacer: Pacer | None = None,
        want: int | None = None,
    ) -> tuple[_Segment, bool]:
        """Send lines in order, a bounded number in flight, until done, out of time or room, or stopped.

        Lines are started strictly in order, so what was started is a prefix of `lines`. With a pacer, what
        is in flight follows the grant of the job's budget, renewed every status check.
        """
        deadline = self.monotonic() + self.remaining_seconds() - self.reserve_seconds
        if pacer is None:
            gate = Limiter(self.requests_in_flight if want is None else max(1, want))
            return await self._send_in_order(batch, provider, lines, deadline, gate)
        await pacer.acquire(self.requests_in_flight if want is None else want)
        watch = _Watch(self.store, batch, pacer, self.status_check_interval, self.clock)
        try:
            # Every attempt the lines' tasks make, retried ones too, is reported to the pacer.
            with observing_attempts(pacer):
                return await self._send_in_order(batch, provider, lines, deadline, pacer.limiter, watch)
        finally:
            await watch.close()

    async def _send_in_order(
        self,
        batch: BatchRecord,
        provider: Provider,
        lines: Iterator[Span],
        deadline: float,
        gate: Limiter,
        watch: _Watch | None = None,
    ) -> tuple[_Segment, bool]:
        tasks: list[asyncio.Task[tuple[bool, bytes, tuple[int, ...]]]] = []
        stopped = False
        next_check = self.monotonic() + self.status_check_interval
        segment = _Segment()
        held = 0  # bytes of answers this invocation holds; past `segment_bytes` it stops and records them

        async def answer(raw: bytes) -> tuple[bool, bytes, tuple[int, ...]]:
            nonlocal held
            request = parse_request_line(raw)  # plan accepted every line of the chunk
            try:
                # The url plan checked, in the form it checked it: `v1/...` goes as `/v1/...`.
                url = canonical_path(request["url"])
                outcome = await provider.send(url, request["body"], deadline=deadline)
            except Exception as exc:  # noqa: BLE001  # one line's fault is that line's error, never the chunk's
                logger.exception("Provider fault", extra={"batch_id": batch.id})
                outcome = Outcome.failure("internal_error", f"The request could not be sent: {type(exc).__name__}.")
            finally:
                gate.release()
            line = result_line(request.get("custom_id"), outcome)
            held += len(line)
            return outcome.ok, line, _usage(outcome)

        async for _start, end, raw in _read_ahead(lines):
            if not await _admit(gate, deadline - self.monotonic(), watch):
                break  # out of time, or the batch stopped while no slot was free (said below)
            if self.monotonic() >= deadline or held >= self.segment_bytes:
                gate.release()
                break
            if self.monotonic() >= next_check:
                next_check = self.monotonic() + self.status_check_interval
                if watch is not None:
                    status, expires_at = watch.state  # read with the budget at its last renewal
                else:
                    # Off the event loop: the requests in flight keep going while DynamoDB answers.
                    status, expires_at = await asyncio.to_thread(self.store.batches.run_state, batch.id)
                reason = stopped_reason(status, expires_at, self.clock())
                if reason:
                    logger.info("Batch stopped; no more requests", extra={"batch_id": batch.id, "reason": reason})
                    gate.release()
                    stopped = True
                    break
            tasks.append(asyncio.create_task(answer(raw)))
            segment.end = end
        if watch is not None:
            watch.pacer.want = 0  # nothing more to start: what is in flight still counts, the rest goes to others
            if not stopped and watch.stopped.is_set():
                logger.info("Batch stopped; no more requests", extra={"batch_id": batch.id})
                stopped = True
        for ok, line, usage in await asyncio.gather(*tasks):
            segment.lines.append((ok, line))
            if ok:
                segment.usage = [a + b for a, b in zip(segment.usage, usage, strict=True)]
        if not stopped and self.clock() >= (batch.expires_at or float("inf")):
            stopped = True
        return segment, stopped

    def _record(
        self, batch_id: str, chunk: int, span: tuple[int, int, int], done: bool, answered: _Segment
    ) -> dict[str, Any]:
        cursor, next_cursor, next_offset = span
        attempt = secrets.token_hex(6)
        out_key, err_key = part_keys(batch_id, chunk, cursor, attempt)
        out = b"".join(line for ok, line in answered.lines if ok)
        err = b"".join(line for ok, line in answered.lines if not ok)
        if out:
            self.store.objects.put_bytes(out_key, out, content_type="application/jsonl")
        if err:
            self.store.objects.put_bytes(err_key, err, content_type="application/jsonl")
        completed = sum(1 for ok, _ in answered.lines if ok)
        segment = SegmentRecord(
            batch_id=batch_id,
            chunk=chunk,
            cursor=cursor,
            next_cursor=next_cursor,
            next_offset=next_offset,
            done=done,
            out_key=out_key if out else None,
            err_key=err_key if err else None,
            completed=completed,
            failed=len(answered.lines) - completed,
            **dict(zip(USAGE_PATHS, answered.usage, strict=True)),
            pending=True,
        )
        kept = self.store.segments.put(segment)
        if kept is not None:
            # A twin invocation kept this segment first; its parts and its cursor are the ones that count.
            logger.warning("Segment already kept", extra={"batch_id": batch_id, "chunk": chunk, "cursor": cursor})
            segment = kept
        return self._commit(batch_id, segment)

    def _commit(self, batch_id: str, segment: SegmentRecord) -> dict[str, Any]:
        """Commit a kept segment, retrying by itself what DynamoDB cancels for contention on the batch item."""
        answer = {"cursor": segment.next_cursor, "offset": segment.next_offset, "done": segment.done}
        if not segment.pending:
            return answer
        for attempt in range(self.commit_attempts):
            verdict = self.store.segments.commit(segment)
            if verdict in ("recorded", "duplicate"):
                return answer
            if verdict == "closed":
                # Finalize has begun: it merges and counts what is kept itself.
                logger.warning("Batch closed before the segment was committed", extra={"batch_id": batch_id})
                return {"cursor": segment.cursor, "offset": None, "done": True}
            # Full jitter: many workers that conflicted together must not all come back together.
            self.sleep(self.random() * min(COMMIT_BACKOFF_CAP, COMMIT_BACKOFF_BASE * 2**attempt))
        # Failing the invocation is safe: the next one finds the kept segment and commits it unsent.
        raise ServerError(f"Committing a segment of {batch_id} conflicted {self.commit_attempts} times.")


async def _admit(gate: Limiter, timeout: float, watch: _Watch | None) -> bool:
    """Take a slot of the gate, waiting at most `timeout` and only while the batch runs; False if not taken."""
    if gate.try_acquire():
        return True
    if timeout <= 0:
        return False
    slot = asyncio.ensure_future(gate.acquire())
    waits: set[asyncio.Future[Any]] = {slot}
    if watch is not None:
        waits.add(asyncio.ensure_future(watch.stopped.wait()))
    done, waiting = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for future in waiting:
        future.cancel()  # a slot given just as it is cancelled goes back to the gate (Limiter.acquire)
    return slot in done


class _Watch:
    """Every interval, off the event loop: the batch's state and the job's budget in one read, then the renewal.

    In its own task, so a worker whose grant is full (or none) still renews, and still hears of a cancel.
    """

    def __init__(
        self, store: Store, batch: BatchRecord, pacer: Pacer, interval: float, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.batch = batch
        self.pacer = pacer
        self.interval = interval
        self.clock = clock
        self.state: tuple[str, float | None] = (batch.status, batch.expires_at)
        self.stopped = asyncio.Event()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                # Closing ends the wait at once; an interval gone by (TimeoutError) means poll again.
                await asyncio.wait_for(self._closing.wait(), self.interval)
                return
            try:
                status, expires_at, budget = await asyncio.to_thread(self.store.poll, self.batch.id, self.batch.job_id)
                self.state = (status, expires_at)
                if stopped_reason(status, expires_at, self.clock()):
                    self.stopped.set()
                await self.pacer.renew(budget)
            except Exception:  # noqa: BLE001  # a failed poll must not lose the lines in flight; the next may pass
                logger.exception("Status and budget poll failed", extra={"batch_id": self.batch.id})
                self.pacer.lapse()

    async def close(self) -> None:
        """Stop renewing (a renewal under way ends first, or it could bring the lease back) and release it."""
        self._closing.set()
        await self._task
        await self.pacer.release()


def _usage(outcome: Outcome) -> tuple[int, ...]:
    """The line's token counts, in USAGE_PATHS' order; none for a line that failed."""
    return (*outcome.usage(), *outcome.token_details()) if outcome.ok else (0,) * len(USAGE_PATHS)
