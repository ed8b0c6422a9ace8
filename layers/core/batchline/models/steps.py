"""Step Functions payloads: what statemachine/batch.asl.json hands each task, and what it reads back.

Plan gets `{batch_id}`; its ResultSelector reads every key of the answer, so `manifest_key` is there
even when null (a JSONPath that finds nothing fails the state). Each item of the Map is a Chunk of
the manifest; Work gets `{batch_id, job_id, chunk, cursor, offset, waits}` and answers `{cursor,
offset, done, wait}`. Finalize gets `{batch_id, fault}` and answers `{status}`. Answers are dumped whole, None
kept: their keys are the ASL's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchline.models.batches import BatchStatus
from batchline.models.common import Model


@dataclass(frozen=True)
class Chunk:
    """One Map item: a run of consecutive request lines and the exact bytes that hold them."""

    chunk: int
    first_line: int
    line_count: int
    start_byte: int
    end_byte: int


class PlanInput(Model):
    """The Plan task's payload."""

    batch_id: str


class PlanOutput(Model):
    """Plan's answer: `status` for the Choice, `manifest_key` for the ItemReader, `max_concurrency` for the
    Map, `job_id` for its workers."""

    status: BatchStatus
    manifest_key: str | None
    max_concurrency: int
    job_id: str


class WorkerInput(Model):
    """The Work task's payload: one chunk of the manifest, from the cursor the last invocation reached."""

    batch_id: str
    # Named by the plan so an invocation reads its segment, batch and job in one call; None in older runs.
    job_id: str | None = None
    chunk: Chunk
    cursor: int
    # The byte where line `cursor` starts (None: the chunk's start, then skip `cursor` lines).
    offset: int | None = None
    # The state machine waits when the answer names `wait`; False in runs from before it did, which would
    # invoke a worker that left for want of a share again at once (ChunkRun.run).
    waits: bool = False


class WorkerOutput(Model):
    """Work's answer, the child's loop state: where the next invocation starts, and whether there is one."""

    cursor: int
    offset: int | None
    done: bool
    # Seconds Step Functions waits before the next invocation: the job's budget gave this one no share.
    wait: int | None = None


class FinalizeInput(Model):
    """The Finalize task's payload.

    `fault` is null, or what a Catch put at `$.fault` (`Error` and `Cause`), kept as Step Functions wrote it.
    """

    batch_id: str
    fault: dict[str, Any] | None = None


class FinalizeOutput(Model):
    """Finalize's answer: the terminal status."""

    status: BatchStatus
