"""Chunks sized to the job's concurrency, invocations that stop and resume at a byte, and what one costs in calls.

Step Functions bills per state transition, so orchestration must grow with concurrency, not with lines:
a batch is cut into about as many chunks as it runs workers at once, and a worker answers its chunk
across as many invocations as it takes, each reading on from where the last one stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from batchline.finalizing import finalize
from batchline.models import Chunk
from batchline.planning import plan
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_run_steps import EchoProvider, new_batch, read_lines, request

LINES = 1_000


def manifest(store: Store, answer: dict[str, Any]) -> list[Chunk]:
    assert answer["status"] == "in_progress", answer
    return [Chunk(**c) for c in json.loads(b"".join(store.objects.stream(answer["manifest_key"])))]


def set_sla(store: Store, tenant: Tenant, **sla: Any) -> None:
    job = tenant.job.model_copy(update={"sla": tenant.job.sla.model_copy(update=sla)})
    store._table.resource.put_item(Item={**store._table.item("job", job, owner=job.tenant_id)})


@pytest.mark.parametrize(("max_concurrency", "per_worker", "expected"), [(50, 25, 2), (100, 25, 4), (10, 25, 1)])
def test_a_batch_is_as_many_chunks_as_it_runs_workers_at_once_not_one_per_hundred_lines(
    store: Store, tenant: Tenant, runs: RecordedRuns, max_concurrency: int, per_worker: int, expected: int
) -> None:
    set_sla(store, tenant, max_concurrency=max_concurrency)
    batch = new_batch(store, tenant, runs, LINES)

    answer = plan(store, batch.id, lines_per_chunk=50_000, requests_per_worker=per_worker)
    chunks = manifest(store, answer)

    assert answer["max_concurrency"] == expected
    assert len(chunks) == expected
    # Contiguous, every line in exactly one chunk, and about equal shares of the bytes.
    assert [c.first_line for c in chunks] == [sum(c.line_count for c in chunks[:i]) for i in range(len(chunks))]
    assert sum(c.line_count for c in chunks) == LINES
    assert all(a.end_byte <= b.start_byte for a, b in itertools.pairwise(chunks))
    # Each chunk closes at the first line past its share, so the last is short by at most a line each.
    sizes = [c.end_byte - c.start_byte for c in chunks]
    assert max(sizes) - min(sizes) <= len(chunks) * max(len(json.dumps(request(i))) + 1 for i in range(LINES))


def test_a_job_may_still_ask_for_one_line_chunks(store: Store, tenant: Tenant, runs: RecordedRuns) -> None:
    set_sla(store, tenant, lines_per_chunk=1)
    batch = new_batch(store, tenant, runs, 30)

    chunks = manifest(store, plan(store, batch.id, lines_per_chunk=50_000, requests_per_worker=25))

    assert [c.line_count for c in chunks] == [1] * 30


def test_an_invocation_that_holds_its_limit_of_answers_records_them_and_goes_on_from_its_byte(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs, 40)
    (chunk,) = manifest(store, plan(store, batch.id, lines_per_chunk=50_000, requests_per_worker=1_000))
    provider = EchoProvider()
    # One byte of answers is the limit: every answer in order is committed as soon as it is in, and no line
    # starts while one is held past the limit.
    run = ChunkRun(store, lambda job: provider, requests_in_flight=4, remaining_seconds=lambda: 900.0,
                   reserve_seconds=10.0, status_check_interval=60.0, segment_bytes=1)  # fmt: skip

    assert run.run(batch.id, chunk, 0, job_id=tenant.job.id)["done"]

    assert provider.sent == [str(i) for i in range(40)]  # each line once, in order
    segments = store.segments.of_batch(batch.id)
    # One invocation, many segments: none holds more than the lines in flight when the limit was reached.
    assert len(segments) >= 10
    assert all(s.next_cursor - s.cursor <= 4 for s in segments)
    data = b"".join(json.dumps(request(i)).encode() + b"\n" for i in range(40))
    for segment in segments:
        # The offset is where line `next_cursor` starts in the input file.
        assert data[: segment.next_offset].count(b"\n") == segment.next_cursor
    assert [(s.cursor, s.next_cursor) for s in segments] == list(
        itertools.pairwise([0, *(s.next_cursor for s in segments)])
    )
    finalize(store, lambda *_: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    assert [line["custom_id"] for line in read_lines(store, ended, ended.output_file_id)] == [
        f"r{i}" for i in range(40)
    ]


class PeakProvider(EchoProvider):
    """Answers after every other started line has had its turn, and keeps the most it held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = self.peak = 0

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Any:
        self.now += 1
        self.peak = max(self.peak, self.now)
        for _ in range(5):
            await asyncio.sleep(0)  # the event loop starts every line the gate lets through meanwhile
        self.now -= 1
        return await super().send(url, body, deadline=deadline)


def test_a_worker_keeps_no_more_in_flight_than_its_job_allows(store: Store, tenant: Tenant, runs: RecordedRuns) -> None:
    set_sla(store, tenant, max_concurrency=3)
    batch = new_batch(store, tenant, runs, 40)
    (chunk,) = manifest(store, plan(store, batch.id, lines_per_chunk=50_000, requests_per_worker=100))
    provider = PeakProvider()
    run = ChunkRun(store, lambda job: provider, requests_in_flight=100, remaining_seconds=lambda: 900.0,
                   reserve_seconds=10.0, status_check_interval=60.0)  # fmt: skip

    assert run.run(batch.id, chunk, 0, job_id=tenant.job.id)["done"]

    assert provider.peak == 3
    assert len(provider.sent) == 40


class Calls:
    """Every DynamoDB and S3 operation the store's clients send, counted by name."""

    def __init__(self) -> None:
        self.counted: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[-2:]
        self.counted[f"{service}.{operation}"] += 1


@pytest.fixture
def calls(store: Store) -> Iterator[Calls]:
    counter = Calls()
    clients = [store._table.resource.meta.client, store.objects.client]
    for client in clients:
        client.meta.events.register("before-call.*.*", counter)
    yield counter
    for client in clients:
        client.meta.events.unregister("before-call.*.*", counter)


def test_one_invocation_reads_its_segment_batch_and_job_in_one_call_and_writes_once(
    store: Store, tenant: Tenant, runs: RecordedRuns, calls: Calls
) -> None:
    batch = new_batch(store, tenant, runs, 40)
    (chunk,) = manifest(store, plan(store, batch.id, lines_per_chunk=50_000, requests_per_worker=1_000))
    calls.counted.clear()
    run = ChunkRun(store, lambda job: EchoProvider(), requests_in_flight=4, remaining_seconds=lambda: 900.0,
                   reserve_seconds=10.0, status_check_interval=60.0)  # fmt: skip

    assert run.run(batch.id, chunk, 0, job_id=tenant.job.id, offset=None)["done"]

    assert calls.counted == Counter(
        {
            "dynamodb.BatchGetItem": 1,  # the kept segment (none), the batch and its job
            "s3.GetObject": 1,  # the chunk's bytes, in one range: they are fewer than a first range's
            "s3.PutObject": 1,  # the answers (no errors: no error part)
            # The segment, kept pending; and the job's budget's summary, made by its first holder.
            "dynamodb.PutItem": 2,
            # The job's budget, as its first holder joins: the summary (none yet), and its batch's partition;
            # as it leaves, its batch's share, to see whether it was the last holder.
            "dynamodb.GetItem": 2,
            "dynamodb.Query": 1,
            # The segment committed with the batch's counts; the batch's share made, the lease taken and
            # given back, and the batch's pool back to the room (its last holder left).
            "dynamodb.TransactWriteItems": 5,
        }
    )


def test_the_status_check_reads_two_attributes_of_the_batch(store: Store, tenant: Tenant, runs: RecordedRuns) -> None:
    batch = new_batch(store, tenant, runs, 3)
    sent: list[dict[str, Any]] = []
    client = store._table.resource.meta.client

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    client.meta.events.register("provide-client-params.dynamodb.GetItem", keep)
    try:
        assert store.batches.run_state(batch.id) == ("validating", batch.expires_at)
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.GetItem", keep)

    (params,) = sent
    assert sorted(params["ExpressionAttributeNames"].values()) == ["expires_at", "status"]
    assert "ConsistentRead" not in params  # eventually consistent: half the read's price
