"""Worker: send one chunk's requests to the model, many in flight, and record what each line got as it goes.

An invocation answers a contiguous run of the chunk's lines from its cursor on, and records them as it
goes: at every checkpoint (`checkpoint_seconds`, or once it holds `segment_bytes` of answers) the prefix
answered so far in input order becomes a segment, while the requests in flight go on (checkpoints.py);
the batch's counts, usage and cost are the sum of the committed checkpoints. Every interval it reads the
batch's state and renews its share of the job's budget (watch.py).

A commit DynamoDB cancels for contention is retried here, with jittered backoff; if it keeps failing the
invocation fails. An invocation that dies, however, leaves its committed segments: the next one at the
same cursor finds them, commits the last one if it was kept but not committed, and answers where they
end, so no line answered before the last checkpoint goes upstream again. The lines it did not reach
are the next invocation's (the state machine loops until `done`); lines that a cancel or the window's
end stops are answered by finalize.

An invocation that the job's budget gives no share (others come first) would be billed for its memory
while it waits for one: it leaves instead, at its acquire or once it has idled a whole renewal interval
with nothing in flight, and answers `wait`, the seconds Step Functions waits before the next invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import islice
from typing import Any, Literal

from batchline.budget import Tuning
from batchline.checkpoints import Answer, Committer, Log
from batchline.data.contention import Backoff
from batchline.jsonl import parse_request_line, request_lines
from batchline.layout import file_key
from batchline.models import BatchRecord, Chunk, JobRecord, SegmentRecord, canonical_path
from batchline.models.batches import USAGE_PATHS
from batchline.observability import logger
from batchline.pacing import Limiter, Pacer
from batchline.providers import Outcome, Provider
from batchline.providers.retry import observing_attempts
from batchline.result_lines import result_line
from batchline.store import Store
from batchline.watch import Watch, stopped_reason

ProviderFactory = Callable[[JobRecord], Provider]
Span = tuple[int, int, bytes]  # a request line's start and end bytes in the input, and the line

# A commit cancelled for a conflict is tried again after a jittered wait (Backoff), up to about 10 s in all.
COMMIT_ATTEMPTS = Backoff.attempts
# The chunk is read in ranged GETs of what the worker sends in a checkpoint's time, within these bounds;
# the first, before any rate is known, is FIRST_RANGE.
MIN_RANGE = 64 * 1024
FIRST_RANGE = 256 * 1024
MAX_RANGE = 8 * 1024 * 1024
# A wait is at least this share of how long the batch has run (idle_wait): see there.
IDLE_WAIT_SHARE = 0.01
# Why the send loop ended before the chunk's lines did, if it did: the batch stopped, or no share.
Ending = Literal["stopped", "idle"] | None


def idle_wait(base: int, running_since: float | None, now: float) -> int:
    """Seconds a worker with no share has Step Functions wait: `base`, or a hundredth of the batch's run so far.

    Each wait costs its chunk's history 9 events (the Work task's 5, the Choice's 2, the Wait's 2), and a
    history holds 25,000: at a fixed 30 s, a day of waiting alone would take up to 25,920, and a batch of the
    unlimited window may wait as long as 24h batches keep the job busy. Growing with the batch's age, the
    waits of a whole year (an execution's longest life) are about 1,030: some 9,300 events.
    """
    age = max(0.0, now - running_since) if running_since is not None else 0.0
    return max(base, math.ceil(age * IDLE_WAIT_SHARE))


async def _read_ahead(lines: Iterator[Span], count: int = 256) -> AsyncIterator[Span]:
    """The lines, read off the event loop a few at a time: S3 is read while requests are in flight."""
    while batch := await asyncio.to_thread(list, islice(lines, count)):
        for line in batch:
            yield line


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
        checkpoint_seconds: float = 10.0,
        segment_bytes: int = 8 * 1024 * 1024,
        budget: Tuning | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random.random,
        commit_attempts: int = COMMIT_ATTEMPTS,
        idle_wait_seconds: int = 30,
    ) -> None:
        self.store = store
        self.providers = providers
        self.requests_in_flight = requests_in_flight
        self.remaining_seconds = remaining_seconds
        # Time kept free at the end: one upstream attempt may still be running when sending stops.
        self.reserve_seconds = reserve_seconds
        self.status_check_interval = status_check_interval
        self.checkpoint_seconds = checkpoint_seconds
        self.segment_bytes = segment_bytes
        # The job's concurrency budget, shared with every worker of the job's batches and renewed every
        # status check; its lease outlives two renewals (WorkerSettings holds the deployed one to that too).
        self.budget = budget or Tuning(
            interval=status_check_interval, lease_seconds=max(30.0, 3 * status_check_interval)
        )
        self.clock = clock
        self.monotonic = monotonic
        self.committer = Committer(store, Backoff(attempts=commit_attempts, sleep=sleep, random=random))
        # The shortest wait of a worker that leaves with no share (idle_wait).
        self.idle_wait_seconds = idle_wait_seconds

    def run(
        self,
        batch_id: str,
        chunk: Chunk,
        cursor: int,
        *,
        job_id: str | None = None,
        offset: int | None = None,
        waits: bool = True,
    ) -> dict[str, Any]:
        """Answer lines from `cursor` (at byte `offset`) on; `{cursor, offset, done}` for the state machine's loop,
        and `wait` (seconds) when it left for want of a share of its job's budget.

        `waits`: the state machine waits when an answer names `wait`. One from before it did would invoke a
        worker that left again at once: then a worker with no share stays, as it did.
        """
        if job_id is None:  # a run planned before the payload named its job
            job_id = self.store.batches.get_unscoped(batch_id).job_id
        kept, batch, job = self.store.invocation(batch_id, job_id, chunk.chunk, cursor)
        if kept is not None:
            # Answered before, by an invocation that ended or died: never send those lines again.
            return self._resume(batch_id, kept)
        if cursor >= chunk.line_count or stopped_reason(batch.status, batch.expires_at, self.clock()):
            return {"cursor": cursor, "offset": offset, "done": True}
        try:
            return asyncio.run(self._run(batch, job, chunk, cursor, offset, waits))
        except BaseExceptionGroup as group:  # the send loop's task group: the first failure is the invocation's
            raise group.exceptions[0] from None

    def _resume(self, batch_id: str, kept: SegmentRecord) -> dict[str, Any]:
        """Commit what is kept from `kept` on (only the last of a run can be pending) and answer where it ends."""
        for segment in self.store.segments.chain(kept):
            answer = self.committer.commit(batch_id, segment)
            if answer["done"] and answer["cursor"] == segment.cursor:
                return answer  # closed by finalize before this one was committed: it merges the rest
        return answer

    async def _run(
        self, batch: BatchRecord, job: JobRecord, chunk: Chunk, cursor: int, offset: int | None, waits: bool
    ) -> dict[str, Any]:
        start = chunk.start_byte if offset is None else offset
        reading = _Reading(self)
        # Ranged reads, each of about what is sent before the next checkpoint: no stream is held for minutes,
        # and one that drops is read on from its byte.
        blocks = self.store.objects.read_ranges(
            file_key(batch.tenant_id, batch.input_file_id), start, chunk.end_byte, reading.next_range
        )
        lines = request_lines(blocks, start)
        if offset is None:
            lines = islice(lines, cursor, None)  # a cursor from before offsets were kept: skip to it
        provider = self.providers(job)
        holder = f"{batch.id}#{secrets.token_hex(4)}"  # one invocation, one lease
        pacer = Pacer(self.store.budgets, job, batch, tuning=self.budget, holder=holder, clock=self.clock,
                      monotonic=self.monotonic)  # fmt: skip
        # What is left of the chunk bounds what it asks of the job's budget (a 2-line chunk wants 2).
        # Nor more than the job allows one batch: a worker never holds more than its job's concurrency.
        want = min(self.requests_in_flight, job.sla.max_concurrency, chunk.line_count - cursor)
        try:
            async with asyncio.TaskGroup() as tasks:
                log = Log(self, batch.id, chunk, (cursor, offset), tasks)
                await pacer.acquire(want)
                if waits and pacer.idle_renewals:
                    # Others come first: it leaves before it reads or sends anything.
                    logger.info("No share of the job's budget; waiting", extra={"batch_id": batch.id})
                    await pacer.release()
                    return self._waiting(batch, {"cursor": cursor, "offset": offset, "done": False})
                watch = Watch(self.store, batch, pacer, self.status_check_interval, self.clock, leaves=waits)
                try:
                    # Every attempt the lines' tasks make, retried ones too, is reported to the pacer.
                    with observing_attempts(pacer):
                        ending = await self._send_all(batch, provider, lines, pacer, watch, log, reading)
                        # The lease goes back only once nothing is in flight: until then it is this worker's.
                        await log.answered()
                finally:
                    await watch.close()
                answer = await log.finish(ending == "stopped")
                return self._waiting(batch, answer) if ending == "idle" and not answer["done"] else answer
        finally:
            await provider.aclose()
            with contextlib.suppress(ValueError):  # still running in its reading thread: it ends with the loop
                blocks.close()  # the GET under way gives its connection back

    def _waiting(self, batch: BatchRecord, answer: dict[str, Any]) -> dict[str, Any]:
        """`answer` with the seconds Step Functions waits before the next invocation (idle_wait)."""
        running_since = batch.in_progress_at or batch.created_at
        return {**answer, "wait": idle_wait(self.idle_wait_seconds, running_since, self.clock())}

    async def _send_all(
        self,
        batch: BatchRecord,
        provider: Provider,
        lines: Iterator[Span],
        pacer: Pacer,
        watch: Watch,
        log: Log,
        reading: _Reading,
    ) -> Ending:
        """Send lines in order, what is in flight following the job's budget, until done, out of time, stopped,
        or idle with no share.

        Lines are started strictly in order, so what was started is a prefix of `lines`; each answer goes to
        the log, which commits its answered prefix at every checkpoint.
        """
        deadline = self.monotonic() + self.remaining_seconds() - self.reserve_seconds
        gate = pacer.limiter

        async def answer(number: int, raw: bytes, end: int) -> None:
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
            log.add(number, Answer(outcome.ok, result_line(request.get("custom_id"), outcome), _usage(outcome), end))

        stopped = False
        number = 0
        async for _start, end, raw in _read_ahead(lines):
            if not await _admit(gate, log, deadline - self.monotonic(), watch.stopped, watch.idle):
                break  # out of time, the batch stopped, or no share, while no slot (or no room) was free (below)
            if log.closed:
                gate.release()
                break
            if self.monotonic() >= deadline:
                gate.release()
                break
            if reason := stopped_reason(*watch.state, self.clock()):
                logger.info("Batch stopped; no more requests", extra={"batch_id": batch.id, "reason": reason})
                gate.release()
                stopped = True
                break
            log.tasks.create_task(answer(number, raw, end))
            number += 1
            reading.sent(end)
        pacer.want = 0  # nothing more to start: what is in flight still counts, the rest goes to others
        if not stopped and watch.stopped.is_set():
            logger.info("Batch stopped; no more requests", extra={"batch_id": batch.id})
            stopped = True
        log.started(number)
        if not stopped and self.clock() >= (batch.expires_at or float("inf")):
            stopped = True
        if stopped:
            return "stopped"
        if watch.idle.is_set():
            logger.info("No share of the job's budget for an interval; waiting", extra={"batch_id": batch.id})
            return "idle"
        return None


class _Reading:
    """How much of the chunk each ranged GET asks for: what was sent in a checkpoint's time, within bounds."""

    def __init__(self, run: ChunkRun) -> None:
        self.run = run
        self.began = run.monotonic()
        self.first: int | None = None
        self.end = 0

    def sent(self, end: int) -> None:
        if self.first is None:
            self.first = end
        self.end = end

    def next_range(self) -> int:
        elapsed = self.run.monotonic() - self.began
        if self.first is None or elapsed <= 0:
            return FIRST_RANGE
        rate = (self.end - self.first) / elapsed
        return int(min(MAX_RANGE, max(MIN_RANGE, rate * self.run.checkpoint_seconds)))


async def _admit(gate: Limiter, log: Log, timeout: float, *stopping: asyncio.Event) -> bool:
    """Take a slot of the gate once the log has room, waiting at most `timeout` and only until one of
    `stopping` is set or the log takes no more answers; False if not taken."""
    if log.room.is_set() and gate.try_acquire():
        return True
    if timeout <= 0:
        return False
    ends = time.monotonic() + timeout
    stops = [asyncio.ensure_future(event.wait()) for event in (*stopping, log.stopped)]
    try:
        for wait in (log.room.wait, gate.acquire):
            step = asyncio.ensure_future(wait())
            done, _ = await asyncio.wait(
                {step, *stops}, timeout=ends - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            if step not in done:
                step.cancel()  # a slot given just as it is cancelled goes back to the gate (Limiter.acquire)
                return False
        return True
    finally:
        for future in stops:
            future.cancel()


def _usage(outcome: Outcome) -> tuple[int, ...]:
    """The line's token counts, in USAGE_PATHS' order; none for a line that failed."""
    return (*outcome.usage(), *outcome.token_details()) if outcome.ok else (0,) * len(USAGE_PATHS)
