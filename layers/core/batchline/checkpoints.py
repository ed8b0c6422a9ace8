"""A worker's checkpoints: its answers in input order, and each answered prefix kept and committed as a segment.

The send loop (worker.py) hands every answer to the `Log` as it comes, in whatever order; the log holds
them until the prefix before them is answered, and at every checkpoint its answered prefix becomes a
segment through the `Committer`: part files first, then the segment's own item (kept, `pending`), then
the one transaction that commits it and adds its counts to the batch. Answers past a gap in input order
wait in memory (no more than `segment_bytes`) until the gap fills.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from batchline.errors import ServerError
from batchline.layout import part_keys
from batchline.models import Chunk, SegmentRecord
from batchline.models.batches import USAGE_PATHS
from batchline.observability import logger
from batchline.store import Store

# A segment's `runs` (alternate runs of output and error lines) stay a small list on its item: past this
# many, it is committed at once.
MAX_RUNS = 2000
# The name of a checkpoint's task, so that a look at the loop's tasks (a debugger, a test) can tell them.
CHECKPOINT_TASK = "checkpoint"


@dataclass(frozen=True)
class Answer:
    """One line's result line, whether it goes to the output file, its tokens, and the input byte past it."""

    ok: bool
    line: bytes
    usage: tuple[int, ...]
    end: int


def run_lengths(answers: list[Answer]) -> list[int]:
    """Run lengths of output and error lines, alternately, output first (SegmentRecord.runs)."""
    runs = [0]
    for answer in answers:
        if answer.ok != (len(runs) % 2 == 1):
            runs.append(0)
        runs[-1] += 1
    return runs


class Retries(Protocol):
    """How a commit cancelled for contention is tried again (the table's jittered backoff)."""

    @property
    def attempts(self) -> int: ...

    def tries(self) -> Iterator[int]: ...


class Committer:
    """Keeps segments and commits them, retrying by itself what DynamoDB cancels for contention."""

    def __init__(self, store: Store, commits: Retries) -> None:
        self.store = store
        self.commits = commits

    def record(
        self, batch_id: str, chunk: int, cursor: int, answers: list[Answer], done: bool
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
            runs=run_lengths(answers),
            pending=True,
        )
        kept = self.store.segments.put(segment)
        if kept is not None:
            # A twin invocation kept this segment first; its parts and its cursor are the ones that count.
            logger.warning("Segment already kept", extra={"batch_id": batch_id, "chunk": chunk, "cursor": cursor})
            return self.commit(batch_id, kept), False
        return self.commit(batch_id, segment), True

    def commit(self, batch_id: str, segment: SegmentRecord) -> dict[str, Any]:
        """Commit a kept segment; the worker's answer for where the chunk stands after it."""
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


class Checkpointing(Protocol):
    """What the log reads of its invocation: its clock, when a checkpoint is due, and where segments go."""

    monotonic: Callable[[], float]
    checkpoint_seconds: float
    segment_bytes: int
    committer: Committer


class Log:
    """The invocation's answers in input order; at each checkpoint, the answered prefix becomes a segment.

    Commits run one at a time, off the event loop, while the requests in flight go on. Answers past a gap
    wait here; while they and the uncommitted prefix hold `segment_bytes`, no line is started (`room`).
    """

    def __init__(
        self,
        run: Checkpointing,
        batch_id: str,
        chunk: Chunk,
        at: tuple[int, int | None],
        tasks: asyncio.TaskGroup,
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
        self._ready: list[Answer] = []  # answered, in order, from `cursor` on
        self._ready_runs = 0  # how many runs `_ready` makes (SegmentRecord.runs), kept as it grows
        self._waiting: dict[int, Answer] = {}  # answered past a gap, by their number in this invocation
        self._next = 0  # the number of the first line not in `_ready`
        self._started: int | None = None  # how many lines were started, once no more will be
        self._committing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._all_in = asyncio.Event()
        self._since = run.monotonic()  # when the last checkpoint began

    def add(self, number: int, answer: Answer) -> None:
        self._waiting[number] = answer
        self.held += len(answer.line)
        if self.held >= self.run.segment_bytes:
            self.room.clear()
        while self._next in self._waiting:
            ready = self._waiting.pop(self._next)
            # A new run when the kind changes (the first run is of output lines, so an error starts one too);
            # counted here, as `run_lengths` of the whole prefix on every answer would be quadratic in a checkpoint.
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
        record = self.run.committer.record
        answer, own = await asyncio.to_thread(record, self.batch_id, self.chunk.chunk, cursor, answers, done)
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
