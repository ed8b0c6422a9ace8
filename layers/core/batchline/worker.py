"""Worker: send one chunk's requests to the model, many in flight, and record what each line got as it goes.

An invocation answers a contiguous run of the chunk's lines from its cursor on, and records them as it
goes: at every checkpoint (`checkpoint_seconds`, or once it holds `segment_bytes` of answers) the prefix
answered so far in input order becomes a segment, while the requests in flight go on. A segment is part
files first, then its own item (kept, `pending`), then one transaction that commits it and adds its
counts to the batch: the batch's counts, usage and cost are the sum of the committed checkpoints.
Answers past a gap in input order wait in memory (no more than `segment_bytes`) until the gap fills.

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
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from batchline.budget import Tuning
from batchline.data.contention import Backoff
from batchline.errors import ServerError
from batchline.jsonl import parse_request_line, request_lines
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

# A commit cancelled for a conflict is tried again after a jittered wait (Backoff), up to about 10 s in all.
COMMIT_ATTEMPTS = Backoff.attempts
# A segment's `runs` (alternate runs of output and error lines) stay a small list on its item: past this
# many, it is committed at once.
MAX_RUNS = 2000
# The name of a checkpoint's task, so that a look at the loop's tasks (a debugger, a test) can tell them.
CHECKPOINT_TASK = "checkpoint"
# The chunk is read in ranged GETs of what the worker sends in a checkpoint's time, within these bounds;
# the first, before any rate is known, is FIRST_RANGE.
MIN_RANGE = 64 * 1024
FIRST_RANGE = 256 * 1024
MAX_RANGE = 8 * 1024 * 1024
# A worker with no share leaves once a renewal finds it idle (Pacer.idle_renewals): no grant, nothing in flight
# and others first. Each renewal more it stayed would be an interval billed for nothing.
IDLE_RENEWALS = 1
# A worker short of its share polls this many times an interval (_Watch).
SHORT_POLLS = 4
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


@dataclass(frozen=True)
class _Answer:
    """One line's result line, whether it goes to the output file, its tokens, and the input byte past it."""

    ok: bool
    line: bytes
    usage: tuple[int, ...]
    end: int


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
        self.commits = Backoff(attempts=commit_attempts, sleep=sleep, random=random)
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
            answer = self._commit(batch_id, segment)
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
                log = _Log(self, batch.id, chunk, (cursor, offset), tasks)
                await pacer.acquire(want)
                if waits and pacer.idle_renewals:
                    # Others come first: it leaves before it reads or sends anything.
                    logger.info("No share of the job's budget; waiting", extra={"batch_id": batch.id})
                    await pacer.release()
                    return self._waiting(batch, {"cursor": cursor, "offset": offset, "done": False})
                watch = _Watch(self.store, batch, pacer, self.status_check_interval, self.clock, leaves=waits)
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
        watch: _Watch,
        log: _Log,
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
            log.add(number, _Answer(outcome.ok, result_line(request.get("custom_id"), outcome), _usage(outcome), end))

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

    def _record(
        self, batch_id: str, chunk: int, cursor: int, answers: list[_Answer], done: bool
    ) -> tuple[dict[str, Any], bool]:
        """Keep and commit one segment of `answers`, the lines from `cursor` on; the commit's answer, and
        False if a twin invocation kept a segment at this cursor first (then its answer is the twin's)."""
        attempt = secrets.token_hex(6)
        out_key, err_key = part_keys(batch_id, chunk, cursor, attempt)
        out = b"".join(answer.line for answer in answers if answer.ok)
        err = b"".join(answer.line for answer in answers if not answer.ok)
        if out:
            self.store.objects.put_bytes(out_key, out, content_type="application/jsonl")
        if err:
            self.store.objects.put_bytes(err_key, err, content_type="application/jsonl")
        completed = sum(1 for answer in answers if answer.ok)
        usage = [sum(column) for column in zip(*(answer.usage for answer in answers), strict=True)]
        segment = SegmentRecord(
            batch_id=batch_id,
            chunk=chunk,
            cursor=cursor,
            next_cursor=cursor + len(answers),
            next_offset=answers[-1].end,
            done=done,
            out_key=out_key if out else None,
            err_key=err_key if err else None,
            completed=completed,
            failed=len(answers) - completed,
            **dict(zip(USAGE_PATHS, usage, strict=True)),
            runs=_runs(answers),
            pending=True,
        )
        kept = self.store.segments.put(segment)
        if kept is not None:
            # A twin invocation kept this segment first; its parts and its cursor are the ones that count.
            logger.warning("Segment already kept", extra={"batch_id": batch_id, "chunk": chunk, "cursor": cursor})
            return self._commit(batch_id, kept), False
        return self._commit(batch_id, segment), True

    def _commit(self, batch_id: str, segment: SegmentRecord) -> dict[str, Any]:
        """Commit a kept segment, retrying by itself what DynamoDB cancels for contention on the batch item."""
        answer = {"cursor": segment.next_cursor, "offset": segment.next_offset, "done": segment.done}
        if not segment.pending:
            return answer
        for _ in self.commits.tries():
            verdict = self.store.segments.commit(segment)
            if verdict in ("recorded", "duplicate"):
                return answer
            if verdict == "closed":
                # Finalize has begun: it merges and counts what is kept itself.
                logger.warning("Batch closed before the segment was committed", extra={"batch_id": batch_id})
                return {"cursor": segment.cursor, "offset": None, "done": True}
        # Failing the invocation is safe: the next one finds the kept segment and commits it unsent.
        raise ServerError(f"Committing a segment of {batch_id} conflicted {self.commits.attempts} times.")


class _Log:
    """The invocation's answers in input order; at each checkpoint, the answered prefix becomes a segment.

    Commits run one at a time, off the event loop, while the requests in flight go on. Answers past a gap
    wait here; while they and the uncommitted prefix hold `segment_bytes`, no line is started (`room`).
    """

    def __init__(
        self, run: ChunkRun, batch_id: str, chunk: Chunk, at: tuple[int, int | None], tasks: asyncio.TaskGroup
    ) -> None:
        self.run = run
        self.batch_id = batch_id
        self.chunk = chunk
        self.cursor, self.offset = at  # committed up to line `cursor`, which starts at byte `offset`
        self.tasks = tasks
        # Set when nothing more may be committed: finalize closed the batch, or a twin invocation kept a
        # segment at this one's cursor first (its lines, not these, are the chunk's). Then `ending` is the answer.
        self.closed = False
        self.ending: dict[str, Any] = {}
        self.stopped = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.held = 0  # bytes of answers not yet committed
        self._ready: list[_Answer] = []  # answered, in order, from `cursor` on
        self._ready_runs = 0  # how many runs `_ready` makes (SegmentRecord.runs), kept as it grows
        self._waiting: dict[int, _Answer] = {}  # answered past a gap, by their number in this invocation
        self._next = 0  # the number of the first line not in `_ready`
        self._started: int | None = None  # how many lines were started, once no more will be
        self._committing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._all_in = asyncio.Event()
        self._since = run.monotonic()  # when the last checkpoint began

    def add(self, number: int, answer: _Answer) -> None:
        self._waiting[number] = answer
        self.held += len(answer.line)
        if self.held >= self.run.segment_bytes:
            self.room.clear()
        while self._next in self._waiting:
            ready = self._waiting.pop(self._next)
            # A new run when the kind changes (the first run is of output lines, so an error starts one too);
            # counted here, as `_runs` of the whole prefix on every answer would be quadratic in a checkpoint.
            if not self._ready or self._ready[-1].ok != ready.ok:
                self._ready_runs += 1 if self._ready or ready.ok else 2
            self._ready.append(ready)
            self._next += 1
        if self._started is not None and self._next >= self._started:
            self._all_in.set()
        self._checkpoint_if_due()

    def started(self, count: int) -> None:
        """No more lines will be started: `count` were."""
        self._started = count
        if self._next >= count:
            self._all_in.set()

    def _due(self) -> bool:
        if not self._ready or self._committing is not None or self.closed:
            return False
        return (
            self.run.monotonic() - self._since >= self.run.checkpoint_seconds
            or self.held >= self.run.segment_bytes
            or self._ready_runs >= MAX_RUNS
        )

    def _checkpoint_if_due(self) -> None:
        if self._due():
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._committing = self.tasks.create_task(self._checkpoint(done=False), name=CHECKPOINT_TASK)
        elif self._ready and self._committing is None and self._timer is None and not self.closed:
            # No answer may come for a while (slow lines): the time still brings the checkpoint.
            wait = max(0.0, self._since + self.run.checkpoint_seconds - self.run.monotonic())
            self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._checkpoint_if_due()

    async def _checkpoint(self, *, done: bool) -> None:
        answers, self._ready, self._ready_runs = self._ready, [], 0
        self._since = self.run.monotonic()
        cursor = self.cursor
        done = done or cursor + len(answers) >= self.chunk.line_count  # the chunk's last line is in it
        answer, own = await asyncio.to_thread(self.run._record, self.batch_id, self.chunk.chunk, cursor, answers, done)
        self.held -= sum(len(a.line) for a in answers)
        if answer["cursor"] == cursor:
            # Finalize has begun: stop sending; it answers the lines no segment holds itself.
            self._close({"cursor": cursor, "offset": self.offset, "done": True})
        elif not own:
            self._close(answer)  # the twin's segment ends elsewhere: the next invocation goes on from its end
        else:
            self.cursor, self.offset = answer["cursor"], answer["offset"]
        if self.held < self.run.segment_bytes or self.closed:
            self.room.set()
        self._committing = None
        self._checkpoint_if_due()

    def _close(self, ending: dict[str, Any]) -> None:
        self.closed, self.ending = True, ending
        self._ready, self._ready_runs = [], 0
        self.stopped.set()

    async def answered(self) -> None:
        """Until every line started is answered."""
        await self._all_in.wait()

    async def finish(self, stopped: bool) -> dict[str, Any]:
        """Once every line started is answered: the last checkpoint, and where the next invocation starts."""
        await self.answered()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while (committing := self._committing) is not None:
            await committing
        done = stopped or self.cursor + len(self._ready) >= self.chunk.line_count
        if self._ready and not self.closed:
            await self._checkpoint(done=done)
        if self.closed:
            return self.ending
        # Nothing answered here records nothing: a segment of no lines would make every later try at this
        # cursor answer "no progress" and loop forever. The next invocation starts here afresh.
        return {"cursor": self.cursor, "offset": self.offset, "done": done}


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


def _runs(answers: list[_Answer]) -> list[int]:
    """Run lengths of output and error lines, alternately, output first (SegmentRecord.runs)."""
    runs = [0]
    for answer in answers:
        if answer.ok != (len(runs) % 2 == 1):
            runs.append(0)
        runs[-1] += 1
    return runs


async def _admit(gate: Limiter, log: _Log, timeout: float, *stopping: asyncio.Event) -> bool:
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


class _Watch:
    """Every interval, off the event loop: the batch's state and the job's budget in one read, then the renewal.

    In its own task, so a worker whose grant is full (or none) still renews, and still hears of a cancel;
    if it `leaves`, `idle` is set once the budget has given it no share, and it has had nothing in flight, an
    interval whole.
    """

    def __init__(
        self,
        store: Store,
        batch: BatchRecord,
        pacer: Pacer,
        interval: float,
        clock: Callable[[], float],
        *,
        leaves: bool = True,
    ) -> None:
        self.store = store
        self.batch = batch
        self.pacer = pacer
        self.interval = interval
        self.clock = clock
        self.state: tuple[str, float | None] = (batch.status, batch.expires_at)
        self.stopped = asyncio.Event()
        self.idle = asyncio.Event()
        self.leaves = leaves
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                # Closing ends the wait at once; an interval gone by (TimeoutError) means poll again. A worker
                # whose grant is below its share (the room is short while others shrink) is billed for what it
                # does not send: it looks again sooner, until the room has come back.
                short = self.pacer.short()
                await asyncio.wait_for(self._closing.wait(), self.interval / SHORT_POLLS if short else self.interval)
                return
            try:
                look = await asyncio.to_thread(self.store.poll, self.batch.id, self.batch.job_id)
                self.state = (look.status, look.expires_at)
                if stopped_reason(look.status, look.expires_at, self.clock()):
                    self.stopped.set()
                await self.pacer.renew(look.summary, look.share)
                if self.leaves and self.pacer.idle_renewals >= IDLE_RENEWALS:
                    self.idle.set()
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
