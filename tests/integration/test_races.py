"""Races between workers, cancel, expiry and finalize, driven deliberately: each line ends once, counted once.

No sleeping: a provider runs the competing step (another worker, a cancel, an expiry, a whole finalize) inside
its first send, that is, while the worker under test has lines in flight. Every test ends on the invariant:
each custom_id in exactly one result file, request_counts equal to the lines of each file, usage equal to the
sum over the output file, every result file registered once, the input released.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from batchline import batches
from batchline.errors import Conflict
from batchline.finalizing import finalize
from batchline.models import BatchRecord
from batchline.providers import Outcome
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_finalize_resume import LINES, check_ended_once, new_batch
from tests.integration.test_run_steps import EchoProvider, planned, worker

FAULT = {"Error": "States.TaskFailed", "Cause": "a chunk's worker kept failing"}


def meanwhile(step: Callable[[], None]) -> EchoProvider:
    """A provider that runs `step` during its first send, as a competing invocation would."""
    provider = EchoProvider()
    send = provider.send
    ran: list[bool] = []

    async def racing(url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        if not ran:
            ran.append(True)
            step()
        return await send(url, body, deadline=deadline)

    provider.send = racing  # type: ignore[method-assign]
    return provider


def end(store: Store, batch: BatchRecord, fault: dict[str, Any] | None = None) -> str:
    return str(finalize(store, lambda *_: None, batch.id, fault)["status"])


def expire(store: Store, batch: BatchRecord) -> None:
    store._table.update("batch", batch.id, set_={"expires_at": int(time.time()) - 1})


# Each way a batch can end while a chunk is still running (a completed batch has no chunk left running: its
# Map ended first, and a late twin of a recorded segment finds it recorded and sends nothing).
CLOSES: dict[str, tuple[Callable[[Store, Tenant, BatchRecord], str], str]] = {
    "failed": (lambda store, tenant, batch: end(store, batch, FAULT), "failed"),
    "cancelled": (lambda s, t, b: (batches.cancel_batch(s, t.id, b.id), end(s, b))[1], "cancelled"),
    "expired": (lambda s, t, b: (expire(s, b), end(s, b))[1], "expired"),
}


@pytest.mark.parametrize("close", sorted(CLOSES))
def test_a_worker_that_commits_after_finalize_closed_the_batch_loses_the_race(
    store: Store, tenant: Tenant, runs: RecordedRuns, close: str
) -> None:
    batch = new_batch(store, tenant, runs)
    chunks = planned(store, batch, lines_per_chunk=4)
    closing, status = CLOSES[close]
    ended: list[str] = []
    # The Map's child was stopped (or the batch ended otherwise) while this invocation still had lines in flight.
    late = meanwhile(lambda: ended.append(closing(store, tenant, batch)))
    worker(store, late).run(batch.id, chunks[0], 0)
    assert ended == [status]
    # A retried finalize (the state machine's Retry) changes nothing either.
    assert end(store, batch) == status
    check_ended_once(store, tenant, batch.id, status)


def test_twin_invocations_of_one_segment_record_it_once(store: Store, tenant: Tenant, runs: RecordedRuns) -> None:
    batch = new_batch(store, tenant, runs)
    chunks = planned(store, batch, lines_per_chunk=4)
    twin = EchoProvider()
    # Step Functions' at-least-once Task: a second invocation of the same chunk and cursor runs to the end
    # while the first is still sending.
    # In a thread of its own, as another invocation is: asyncio.run inside this loop would refuse to start.
    with ThreadPoolExecutor(1) as other:
        first = meanwhile(lambda: other.submit(worker(store, twin).run, batch.id, chunks[0], 0).result())
        assert worker(store, first).run(batch.id, chunks[0], 0)["cursor"] == chunks[0].line_count
    assert twin.sent == [str(i) for i in range(chunks[0].line_count)]  # the twin ran, and ran to the end
    for chunk in chunks[1:]:
        worker(store, EchoProvider()).run(batch.id, chunk, 0)
    assert end(store, batch) == "completed"
    check_ended_once(store, tenant, batch.id, "completed")
    recorded = [s for s in store.segments.of_batch(batch.id) if s.chunk == 0 and not s.pending]
    assert len(recorded) == 1


def test_expiry_in_the_middle_of_a_segment_ends_expired_with_each_line_once(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs)
    chunks = planned(store, batch, lines_per_chunk=4)
    worker(store, meanwhile(lambda: expire(store, batch))).run(batch.id, chunks[0], 0)
    for chunk in chunks[1:]:
        worker(store, EchoProvider()).run(batch.id, chunk, 0)
    assert end(store, batch) == "expired"
    check_ended_once(store, tenant, batch.id, "expired")


def test_cancel_before_planning_ends_cancelled_with_every_line_answered_and_counted(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs)
    assert batches.cancel_batch(store, tenant.id, batch.id).status == "cancelling"
    assert end(store, batch) == "cancelled"
    check_ended_once(store, tenant, batch.id, "cancelled")


def test_cancel_while_chunks_run_ends_cancelled_with_each_line_once(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs)
    chunks = planned(store, batch, lines_per_chunk=4)
    worker(store, meanwhile(lambda: batches.cancel_batch(store, tenant.id, batch.id))).run(batch.id, chunks[0], 0)
    for chunk in chunks[1:]:
        worker(store, EchoProvider()).run(batch.id, chunk, 0)
    assert end(store, batch) == "cancelled"
    check_ended_once(store, tenant, batch.id, "cancelled")


def test_cancel_of_a_batch_finalize_has_closed_is_a_conflict_and_changes_nothing(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs)
    for chunk in planned(store, batch, lines_per_chunk=4):
        worker(store, EchoProvider()).run(batch.id, chunk, 0)
    assert end(store, batch) == "completed"
    with pytest.raises(Conflict):
        batches.cancel_batch(store, tenant.id, batch.id)
    check_ended_once(store, tenant, batch.id, "completed")
    assert store.batches.get_unscoped(batch.id).request_counts.total == LINES
