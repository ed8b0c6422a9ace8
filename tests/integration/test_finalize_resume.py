"""Finalize resumes after a crash at any step: each line counted once, each result file registered once.

A crash is driven deliberately: a proxy of the store (and the publisher) raises after its k-th call, for
every k until a run finishes without one; then finalize runs again, as the state machine's Retry would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from batchline import batches, files, ids
from batchline.finalizing import finalize
from batchline.models import BatchRecord
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_run_steps import EchoProvider, new_batch, planned, read_lines, worker

LINES = 10


class Crash(Exception):
    """The injected fault: what a timeout or a transient S3/DynamoDB error does to an invocation."""


class CrashAfter:
    """A store (or publisher) that fails right after its k-th call, counted across both."""

    def __init__(self, store: Any, k: int, counter: CrashAfter | None = None) -> None:
        self._store = store
        self.k = k
        self.calls = 0
        self._counter = counter or self

    def _tick(self) -> None:
        counter = self._counter
        counter.calls += 1
        if counter.calls == counter.k:
            raise Crash(f"injected after call {counter.k}")

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if type(value).__module__.startswith("batchline.data."):
            return CrashAfter(value, self.k, self._counter)  # store.batches, store.objects, ...: counted alike
        if not callable(value) or name.startswith("_"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = value(*args, **kwargs)
            self._tick()
            return answer

        return call

    def publisher(self, events: list[tuple[str, dict[str, Any]]]) -> Callable[[str, dict[str, Any]], None]:
        def publish(kind: str, detail: dict[str, Any]) -> None:
            events.append((kind, detail))
            self._tick()

        return publish


def run_some(store: Store, batch: BatchRecord, scenario: str) -> None:
    """Chunks of 4, 4 and 2 lines. `partial`: one line fails upstream, the last chunk never runs."""
    chunks = planned(store, batch, lines_per_chunk=4)
    if scenario == "all":
        for chunk in chunks:
            worker(store, EchoProvider()).run(batch.id, chunk, 0)
    else:
        worker(store, EchoProvider(raising={"1"})).run(batch.id, chunks[0], 0)
        worker(store, EchoProvider()).run(batch.id, chunks[1], 0)


def check_ended_once(store: Store, tenant: Tenant, batch_id: str, status: str) -> None:
    ended = store.batches.get_unscoped(batch_id)
    assert ended.status == status
    out = read_lines(store, ended, ended.output_file_id)
    err = read_lines(store, ended, ended.error_file_id)
    assert sorted(line["custom_id"] for line in out + err) == sorted(f"r{i}" for i in range(LINES))
    counts = ended.request_counts
    assert (counts.total, counts.completed, counts.failed) == (LINES, len(out), len(err))
    assert ended.usage.total_tokens == sum(line["response"]["body"]["usage"]["total_tokens"] for line in out)
    registered = [
        item["id"]
        for item in boto3.resource("dynamodb").Table(store._table.name).scan()["Items"]
        if item["sk"] == "file" and item.get("purpose") == "batch_output" and item["id"].startswith("file-")
        and item["filename"].startswith(batch_id)
    ]  # fmt: skip
    assert sorted(registered) == sorted(i for i in (ended.output_file_id, ended.error_file_id) if i)
    for file_id in registered:
        stored = b"".join(store.objects.stream(files.file_key(tenant.id, file_id)))
        assert store.files.get(tenant.id, file_id).bytes == len(stored)
    # An empty result is never written (finalize may not delete): no object behind a null file id.
    keys = [o["Key"] for o in store.objects.client.list_objects_v2(Bucket=store.objects.bucket).get("Contents", [])]
    for kind, file_id in (("output", ended.output_file_id), ("errors", ended.error_file_id)):
        if file_id is None:
            assert files.file_key(tenant.id, ids.derived_file_id(batch_id, kind)) not in keys
    assert store._table.get("file", ended.input_file_id)["in_use"] == 0  # type: ignore[index]


@pytest.mark.parametrize(("scenario", "status"), [("all", "completed"), ("partial", "failed")])
def test_finalize_after_a_crash_at_any_step_ends_the_batch_once(
    store: Store, tenant: Tenant, runs: RecordedRuns, scenario: str, status: str
) -> None:
    crashed_at = []
    for k in range(1, 100):
        batch = new_batch(store, tenant, runs, LINES)
        run_some(store, batch, scenario)
        crashing = CrashAfter(store, k)
        events: list[tuple[str, dict[str, Any]]] = []
        try:
            finalize(crashing, crashing.publisher(events), batch.id, None)  # type: ignore[arg-type]
        except Crash:
            crashed_at.append(k)
            # The state machine's Retry: the same input, a fresh invocation.
            assert finalize(store, crashing.publisher(events), batch.id, None) == {"status": status}
        else:
            break
        check_ended_once(store, tenant, batch.id, status)
        assert events[-1][1]["status"] == status
        assert events[-1][1]["request_counts"] == store.batches.get_unscoped(batch.id).request_counts.model_dump()
    assert len(crashed_at) >= 6  # close, merge, register, counters, status, event: each step was crashed


def test_a_late_worker_cannot_record_into_a_cancelling_batch_that_finalize_closed(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs, LINES)
    chunks = planned(store, batch, lines_per_chunk=4)
    late = EchoProvider()
    send = late.send
    crashing = CrashAfter(store, 2)  # finalize crashes right after it closed the batch

    async def finalize_meanwhile(url: str, body: dict[str, Any], *, deadline: float) -> Any:
        if not late.sent:  # the Map failed, the batch was cancelled and finalize began while this worker sent
            batches.cancel_batch(store, tenant.id, batch.id)
            with pytest.raises(Crash):
                finalize(crashing, lambda *_: None, batch.id, None)  # type: ignore[arg-type]
        return await send(url, body, deadline=deadline)

    late.send = finalize_meanwhile  # type: ignore[method-assign]
    assert worker(store, late).run(batch.id, chunks[0], 0) == {"cursor": 0, "offset": None, "done": True}
    assert [s for s in store.segments.of_batch(batch.id) if not s.pending] == []  # kept, never committed
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "cancelled"}
    check_ended_once(store, tenant, batch.id, "cancelled")


def test_a_batch_an_earlier_finalize_left_in_finalizing_ends(store: Store, tenant: Tenant, runs: RecordedRuns) -> None:
    # What the previous finalize left after a crash: finalizing, with nothing recorded of its progress.
    batch = new_batch(store, tenant, runs, LINES)
    run_some(store, batch, "all")
    store.batches.set_status(batch.id, "finalizing", allowed_from=["in_progress"])
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "completed"}
    check_ended_once(store, tenant, batch.id, "completed")
