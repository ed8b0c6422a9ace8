"""Faults, cancel and expiry end to end: nothing lost, nothing doubled, counts exact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from batchline.data.segments import Segments
from batchline.models import SegmentRecord
from batchline.store import Store
from batchline.worker import ChunkRun
from localcloud import LocalCloud, faults
from localcloud.faults import Fault
from tests.e2e.runs import (
    assert_each_line_once_in_order,
    create_job,
    jsonl,
    request_line,
    results,
    run,
    submit,
    wait,
)
from tests.fakes.openai_server import FakeOpenAI

# What the upstream does with each line, by i % 10, and what the line must end as.
FAULTS: dict[int, tuple[str, str]] = {
    1: ("[[fault:429ms=20,ok]]", "ok"),  # rate limited once, retry-after-ms
    2: ("[[fault:429=0,ok]]", "ok"),  # rate limited once, Retry-After
    3: ("[[fault:500]]", "500"),  # a server error every time
    4: ("[[fault:drop,ok]]", "ok"),  # connection dropped once
    5: ("[[fault:slow=3]]", "request_timeout"),  # slower than the timeout every time
    6: ("[[fault:slow=3,ok]]", "ok"),  # slow once
    7: ("[[fault:drop]]", "upstream_unavailable"),  # never answers
}


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> OpenAI:
    return OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def outcome(line: dict[str, Any]) -> str:
    if line["response"] is None:
        return str(line["error"]["code"])
    status = line["response"]["status_code"]
    return "ok" if status == 200 else str(status)


def test_upstream_faults_and_a_worker_crash_lose_and_double_nothing(
    cloud: LocalCloud, client: OpenAI, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                     provider={"type": "openai", "base_url": fake.base_url})  # fmt: skip
    lines = [
        request_line(f"line-{i}", "/v1/chat/completions", f"request {i} {FAULTS.get(i % 10, ('', ''))[0]}")
        for i in range(120)
    ]
    # The worker answering the second chunk dies once after writing its part files, before keeping
    # its segment: the state machine retries the invocation, which must answer the same lines again.
    crashes: list[tuple[int, int]] = []
    keep = Segments.put

    def crash_once(self: Segments, segment: SegmentRecord) -> SegmentRecord | None:
        if segment.chunk == 1 and not crashes:
            crashes.append((segment.chunk, segment.cursor))
            raise RuntimeError("worker died after writing its part files")
        return keep(self, segment)

    monkeypatch.setattr(Segments, "put", crash_once)
    result = run(client, jsonl(lines), endpoint="/v1/chat/completions", job_id=job)

    assert crashes == [(1, 0)]
    assert result.batch.status == "completed"
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    ended = {line["custom_id"]: outcome(line) for line in result.output + result.errors}
    assert ended == {f"line-{i}": FAULTS.get(i % 10, ("", "ok"))[1] for i in range(120)}
    assert {outcome(line) for line in result.output} == {"ok"}
    # The crashed attempt's part files exist, and are not what the output was made of.
    parts = cloud.client("s3").list_objects_v2(
        Bucket=cloud.stack.physical_id("FilesBucket"), Prefix=f"work/{result.batch.id}/parts/000001/"
    )
    assert len(parts["Contents"]) > len(
        [s for s in Store(cloud.table_name, cloud.stack.physical_id("FilesBucket")).segments.of_batch(result.batch.id)
         if s.chunk == 1 for key in ("out_key", "err_key") if getattr(s, key)]
    )  # fmt: skip


def _slow_job(cloud: LocalCloud) -> str:
    # One chunk at a time, two requests in flight, 100 ms each: slow enough to stop half way.
    return create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                      provider={"type": "mock", "latency_ms": 100},
                      sla={"completion_window": "24h", "max_concurrency": 2})  # fmt: skip


def _started(client: OpenAI, batch_id: str) -> None:
    """Wait until the first chunk's answers are recorded."""
    deadline = time.monotonic() + 60
    while client.batches.retrieve(batch_id).request_counts.completed == 0:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def test_cancel_mid_run_keeps_partial_output_and_answers_the_rest_batch_cancelled(
    cloud: LocalCloud, client: OpenAI
) -> None:
    lines = [request_line(f"c-{i}", "/v1/chat/completions", f"cancel me {i}") for i in range(200)]
    batch = submit(client, jsonl(lines), endpoint="/v1/chat/completions", job_id=_slow_job(cloud))
    _started(client, batch.id)
    assert client.batches.cancel(batch.id).status == "cancelling"
    result = results(client, wait(client, batch.id))

    assert result.batch.status == "cancelled"
    assert result.batch.cancelled_at is not None
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    assert 0 < len(result.output) < len(lines)
    cancelled = [line for line in result.errors if line["error"] and line["error"]["code"] == "batch_cancelled"]
    assert len(cancelled) == len(lines) - len(result.output)
    assert all(line["response"] is None for line in cancelled)


def test_a_24h_batch_past_its_window_ends_expired_with_partial_results(cloud: LocalCloud, client: OpenAI) -> None:
    lines = [request_line(f"e-{i}", "/v1/chat/completions", f"expire me {i}") for i in range(200)]
    batch = submit(client, jsonl(lines), endpoint="/v1/chat/completions", job_id=_slow_job(cloud))
    _started(client, batch.id)
    # The window ends now: as if 24 hours had passed.
    cloud.client("dynamodb").update_item(
        TableName=cloud.table_name,
        Key={"pk": {"S": batch.id}, "sk": {"S": "batch"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    result = results(client, wait(client, batch.id))

    assert result.batch.status == "expired"
    assert result.batch.expired_at is not None
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    assert 0 < len(result.output) < len(lines)
    assert {line["error"]["code"] for line in result.errors} == {"batch_expired"}


def test_cancel_of_an_ended_batch_is_a_409(cloud: LocalCloud, client: OpenAI) -> None:
    lines = [request_line("only", "/v1/embeddings", "hello")]
    done = run(client, jsonl(lines), endpoint="/v1/embeddings", job_id=cloud.job_id)
    assert done.batch.status == "completed"
    with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status 'completed'"):
        client.batches.cancel(done.batch.id)


def test_aws_faults_that_botocore_retries_slow_a_batch_and_change_nothing(cloud: LocalCloud, client: OpenAI) -> None:
    lines = [request_line(f"aws-{i}", "/v1/chat/completions", f"aws fault {i}") for i in range(50)]
    with faults.injected(
        Fault.throttling("PlanFunction", "s3", operation="GetObject"),
        Fault("WorkerFunction", "s3", "InternalError", operation="PutObject", times=2),
        # The worker's one read of its segment, batch and job.
        Fault.throttling("WorkerFunction", "dynamodb", operation="BatchGetItem", times=2),
        Fault.throttling("FinalizeFunction", "dynamodb", times=2),
    ) as injected:
        result = run(client, jsonl(lines), endpoint="/v1/chat/completions", job_id=cloud.job_id)
    assert [f.hits for f in injected] == [f.times for f in injected]
    assert result.batch.status == "completed"
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    assert len(result.output) == len(lines)


def test_a_worker_whose_commit_conflicts_sends_no_line_twice(
    cloud: LocalCloud, client: OpenAI, fake: FakeOpenAI
) -> None:
    # Issue 7, defect 6: workers of one batch commit to its one item, and DynamoDB cancels colliding
    # transactions; redoing the whole invocation would send answered (and paid for) lines again.
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                     provider={"type": "openai", "base_url": fake.base_url})  # fmt: skip
    lines = [request_line(f"tc-{i}", "/v1/chat/completions", f"conflict {i}") for i in range(30)]
    sent_before = len(fake.requests)
    with faults.injected(Fault.transaction_conflict("WorkerFunction", times=3)) as (conflict,):
        result = run(client, jsonl(lines), endpoint="/v1/chat/completions", job_id=job)
    assert conflict.hits == 3
    assert result.batch.status == "completed"
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    texts = [r.body["messages"][0]["content"] for r in fake.requests[sent_before:]]
    assert sorted(texts) == sorted(f"conflict {i}" for i in range(30)), "a line was sent upstream twice"


def test_a_chunk_that_keeps_failing_fails_the_map_and_finalize_still_answers_every_line(
    cloud: LocalCloud, client: OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On AWS a failed Distributed Map child fails the Map; its Catch hands the fault to Finalize.
    lines = [request_line(f"mf-{i}", "/v1/chat/completions", f"map fault {i}") for i in range(100)]
    run_chunk = ChunkRun.run

    def broken_second_chunk(self: ChunkRun, batch_id: str, chunk: Any, cursor: int, **at: Any) -> dict[str, Any]:
        if chunk.chunk == 1:
            raise RuntimeError("this chunk's worker always fails")
        return run_chunk(self, batch_id, chunk, cursor, **at)

    monkeypatch.setattr(ChunkRun, "run", broken_second_chunk)
    result = run(client, jsonl(lines), endpoint="/v1/chat/completions", job_id=cloud.job_id)

    assert result.batch.status == "failed"
    assert result.batch.failed_at is not None
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    failed = {line["custom_id"] for line in result.errors}
    assert {f"mf-{i}" for i in range(40, 80)} <= failed
