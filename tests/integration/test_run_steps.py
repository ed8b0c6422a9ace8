"""The run's steps on moto, one at a time: plan, worker and finalize at their edges."""

from __future__ import annotations

import itertools
import json
import tracemalloc
from typing import Any

import pytest

from batchline import batches, files, result_lines
from batchline.data.objects import Writer
from batchline.finalizing import finalize
from batchline.layout import file_key
from batchline.models import BatchCreate, BatchObject, BatchRecord, Chunk, public
from batchline.planning import plan
from batchline.providers import Outcome
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.integration.conftest import RecordedRuns, Tenant

URL = "/v1/chat/completions"


def request(i: int) -> dict[str, Any]:
    return {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": URL,
        "body": {"messages": [{"role": "user", "content": str(i)}]},
    }


class EchoProvider:
    """Answers every line 200 with its text, counting sends; fails the lines it is told to."""

    def __init__(self, raising: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.sent: list[str] = []
        self.raising = raising

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        text = body["messages"][0]["content"]
        self.sent.append(text)
        if text in self.raising:
            raise RuntimeError("provider bug")
        usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        return Outcome.answer(200, {"echo": text, "usage": usage})

    async def aclose(self) -> None:
        pass


def new_batch(store: Store, tenant: Tenant, runs: RecordedRuns, lines: int = 10) -> BatchRecord:
    """A created batch of `lines` chat requests, custom_ids r0, r1, ..., on the tenant's job."""
    data = b"".join(json.dumps(request(i)).encode() + b"\n" for i in range(lines))
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create = BatchCreate(input_file_id=record.id, endpoint=URL, completion_window="24h", job_id=tenant.job.id)
    return batches.create_batch(store, runs, tenant.id, create)


@pytest.fixture
def batch(store: Store, tenant: Tenant, runs: RecordedRuns) -> BatchRecord:
    return new_batch(store, tenant, runs)


def planned(store: Store, batch: BatchRecord, lines_per_chunk: int = 10) -> list[Chunk]:
    # One worker takes the job's whole concurrency: the batch is chunks of `lines_per_chunk` lines.
    answer = plan(store, batch.id, lines_per_chunk=lines_per_chunk, requests_per_worker=1_000)
    assert answer["status"] == "in_progress"
    raw = b"".join(store.objects.stream(answer["manifest_key"]))
    return [Chunk(**c) for c in json.loads(raw)]


def line_ends(store: Store, batch: BatchRecord) -> list[int]:
    """The byte just past each line of the batch's input file."""
    data = b"".join(store.objects.stream(file_key(batch.tenant_id, batch.input_file_id)))
    return list(itertools.accumulate(len(line) for line in data.splitlines(keepends=True)))


def worker(store: Store, provider: EchoProvider, remaining: float = 900.0) -> ChunkRun:
    return ChunkRun(store, lambda job: provider, requests_in_flight=4, remaining_seconds=lambda: remaining,
                    reserve_seconds=10.0, status_check_interval=0.0)  # fmt: skip


def read_lines(store: Store, batch: BatchRecord, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [
        json.loads(x) for x in b"".join(store.objects.stream(files.file_key(batch.tenant_id, file_id))).splitlines()
    ]


def test_plan_run_twice_answers_the_same(store: Store, batch: BatchRecord) -> None:
    first = plan(store, batch.id, lines_per_chunk=4, requests_per_worker=25)
    again = plan(store, batch.id, lines_per_chunk=4, requests_per_worker=25)
    assert first == again
    assert store.batches.get_unscoped(batch.id).request_counts.total == 10


def test_plan_of_a_cancelled_batch_runs_nothing(store: Store, tenant: Tenant, batch: BatchRecord) -> None:
    batches.cancel_batch(store, tenant.id, batch.id)
    assert plan(store, batch.id, lines_per_chunk=4, requests_per_worker=25)["status"] == "cancelling"
    assert store.batches.get_unscoped(batch.id).in_progress_at is None


def test_a_recorded_segment_is_answered_again_without_sending(store: Store, batch: BatchRecord) -> None:
    chunk = planned(store, batch)[0]
    provider = EchoProvider()
    first = worker(store, provider).run(batch.id, chunk, 0)
    assert first == {"cursor": 10, "offset": chunk.end_byte, "done": True}
    assert worker(store, provider).run(batch.id, chunk, 0) == first
    assert store.batches.get_unscoped(batch.id).request_counts.completed == 10


def test_a_worker_out_of_time_answers_a_prefix_and_the_next_one_the_rest(store: Store, batch: BatchRecord) -> None:
    chunk = planned(store, batch)[0]
    provider = EchoProvider()
    # No time to send anything: nothing recorded as done, the chunk is not done.
    none_sent = {"cursor": 0, "offset": None, "done": False}
    assert worker(store, provider, remaining=5.0).run(batch.id, chunk, 0) == none_sent
    assert worker(store, provider).run(batch.id, chunk, 0) == {"cursor": 10, "offset": chunk.end_byte, "done": True}
    assert provider.sent == [str(i) for i in range(10)]


class Clock:
    """A monotonic clock that the provider moves: each answer takes one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_chunk_that_outlives_an_invocation_continues_in_the_next_losing_and_doubling_nothing(
    store: Store, batch: BatchRecord
) -> None:
    chunk = planned(store, batch)[0]
    clock = Clock()
    provider = EchoProvider()
    send = provider.send

    async def one_second_each(url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        clock.now += 1.0
        return await send(url, body, deadline=deadline)

    provider.send = one_second_each  # type: ignore[method-assign]

    def invocation() -> ChunkRun:
        # 10 s kept in reserve, 14 s left: time for four answers, one at a time.
        return ChunkRun(store, lambda job: provider, requests_in_flight=1, remaining_seconds=lambda: 14.0,
                        reserve_seconds=10.0, status_check_interval=60.0, monotonic=clock)  # fmt: skip

    progress = [invocation().run(batch.id, chunk, 0)]
    while not progress[-1]["done"]:
        last = progress[-1]
        progress.append(invocation().run(batch.id, chunk, last["cursor"], offset=last["offset"]))
    # Each invocation reads from where the last one stopped: the byte after its last line.
    ends = line_ends(store, batch)
    assert progress == [
        {"cursor": 4, "offset": ends[3], "done": False},
        {"cursor": 8, "offset": ends[7], "done": False},
        {"cursor": 10, "offset": ends[9], "done": True},
    ]
    assert provider.sent == [str(i) for i in range(10)]
    finalize(store, lambda *_: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    assert [line["custom_id"] for line in read_lines(store, ended, ended.output_file_id)] == [
        f"r{i}" for i in range(10)
    ]
    assert ended.request_counts.completed == 10


def test_a_late_worker_cannot_change_a_batch_finalize_has_begun(store: Store, batch: BatchRecord) -> None:
    chunk = planned(store, batch)[0]
    provider = EchoProvider()
    send = provider.send

    async def finalize_meanwhile(url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        if not provider.sent:  # the Map failed and finalize began while this worker was sending
            store.batches.set_status(batch.id, "finalizing", allowed_from=["in_progress"])
        return await send(url, body, deadline=deadline)

    provider.send = finalize_meanwhile  # type: ignore[method-assign]
    assert worker(store, provider).run(batch.id, chunk, 0) == {"cursor": 0, "offset": None, "done": True}
    assert [s for s in store.segments.of_batch(batch.id) if not s.pending] == []  # kept, never committed
    assert store.batches.get_unscoped(batch.id).request_counts.completed == 0


def test_plan_refuses_a_file_over_200_mb_by_its_size_without_reading_it(store: Store, batch: BatchRecord) -> None:
    store._table.update("file", batch.input_file_id, set_={"bytes": 200 * 1024 * 1024 + 1})
    assert plan(store, batch.id, lines_per_chunk=10, requests_per_worker=25)["status"] == "failed"
    errors = store.batches.get_unscoped(batch.id).errors
    assert errors is not None
    assert [(e.code, e.line) for e in errors.data] == [("file_too_large", None)]


def test_a_provider_fault_is_that_lines_error_not_the_chunks(store: Store, batch: BatchRecord) -> None:
    chunk = planned(store, batch)[0]
    answered = worker(store, EchoProvider(raising={"3"})).run(batch.id, chunk, 0)
    assert answered == {"cursor": 10, "offset": chunk.end_byte, "done": True}
    counts = store.batches.get_unscoped(batch.id).request_counts
    assert (counts.completed, counts.failed) == (9, 1)


def test_finalize_twice_ends_once_and_releases_the_input_once(store: Store, batch: BatchRecord) -> None:
    chunk = planned(store, batch)[0]
    worker(store, EchoProvider()).run(batch.id, chunk, 0)
    events: list[tuple[str, dict[str, Any]]] = []
    publish = lambda kind, detail: events.append((kind, detail))  # noqa: E731
    assert finalize(store, publish, batch.id, None) == {"status": "completed"}
    ended = store.batches.get_unscoped(batch.id)
    assert finalize(store, publish, batch.id, None) == {"status": "completed"}
    assert store.batches.get_unscoped(batch.id).model_dump(exclude={"released"}) == ended.model_dump(
        exclude={"released"}
    )
    assert [kind for kind, _ in events] == ["Batch Completed", "Batch Completed"]  # at least once
    assert events[0][1]["id"] == batch.id
    assert "tenant_id" not in events[0][1]
    assert ended.usage.total_tokens == 30
    assert ended.processing_cost == pytest.approx(30 * 0.5 / 1_000_000)
    assert [line["response"]["body"]["echo"] for line in read_lines(store, ended, ended.output_file_id)] == [
        str(i) for i in range(10)
    ]
    assert store._table.get("file", batch.input_file_id)["in_use"] == 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("before", "fault", "status", "code"),
    [
        ("cancel", None, "cancelled", result_lines.CANCELLED),
        (None, {"Error": "Boom", "Cause": "x"}, "failed", result_lines.FAILED),
    ],
)
def test_a_batch_stopped_before_planning_answers_every_line(
    store: Store, tenant: Tenant, batch: BatchRecord, before: str | None, fault: dict | None, status: str, code: str
) -> None:
    if before == "cancel":
        batches.cancel_batch(store, tenant.id, batch.id)
    assert finalize(store, lambda *_: None, batch.id, fault) == {"status": status}
    ended = store.batches.get_unscoped(batch.id)
    errors = read_lines(store, ended, ended.error_file_id)
    assert [line["custom_id"] for line in errors] == [f"r{i}" for i in range(10)]
    assert {line["error"]["code"] for line in errors} == {code}
    assert ended.output_file_id is None
    assert ended.request_counts.failed == 10
    if fault:
        assert ended.errors is not None
        assert ended.errors.data[0].code == "batch_failed"


def test_the_result_writer_streams_large_files_as_a_multipart_upload(store: Store) -> None:
    blocks = [bytes([i]) * (1024 * 1024) for i in range(12)]  # 12 MiB, one MiB at a time
    writer = store.objects.writer("files/t/large.jsonl")
    for block in blocks:
        writer.write(block)
    assert writer.close() == 12 * 1024 * 1024
    head = store.objects.client.head_object(Bucket=store.objects.bucket, Key="files/t/large.jsonl")
    assert head["ETag"].strip('"').endswith("-2")  # two parts: 8 MiB, then the last 4 MiB
    assert b"".join(store.objects.stream("files/t/large.jsonl")) == b"".join(blocks)


def test_the_writer_holds_one_part_not_a_copy_of_it_besides() -> None:
    # Assembling an upload writes 1 MiB reads into the buffer; bytes(buffer) for upload_part held it twice.
    class Parts:
        def create_multipart_upload(self, **params: Any) -> dict[str, Any]:
            return {"UploadId": "u"}

        def upload_part(self, **params: Any) -> dict[str, Any]:
            return {"ETag": f'"{len(params["Body"])}"'}

    block = b"x" * (1024 * 1024)
    writer = Writer(Parts(), "bucket", "key", content_type="application/jsonl")
    tracemalloc.start()
    try:
        for _ in range(Writer.PART_BYTES // len(block)):
            writer.write(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert writer.held == 0  # the part went up
    assert peak < 1.5 * Writer.PART_BYTES, peak


def test_a_small_result_is_one_put_and_an_aborted_writer_leaves_nothing(store: Store) -> None:
    writer = store.objects.writer("files/t/small.jsonl")
    writer.write(b'{"a": 1}\n')
    writer.close()
    assert b"".join(store.objects.stream("files/t/small.jsonl")) == b'{"a": 1}\n'
    aborted = store.objects.writer("files/t/aborted.jsonl")
    aborted.write(b"x" * (9 * 1024 * 1024))  # a part went up
    aborted.abort()
    uploads = store.objects.client.list_multipart_uploads(Bucket=store.objects.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == "files/t/aborted.jsonl"] == []


def test_the_cost_is_exact_where_the_float_product_is_not(store: Store, batch: BatchRecord) -> None:
    store._table.update("batch", batch.id, set_={"price_1m_tokens": 0.13})
    chunk = planned(store, batch)[0]
    worker(store, EchoProvider()).run(batch.id, chunk, 0)
    finalize(store, lambda kind, detail: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    assert ended.usage.total_tokens * 0.13 / 1_000_000 == 3.900000000000001e-06  # float arithmetic's answer
    assert ended.processing_cost == 3.9e-06
    assert json.loads(ended.model_dump_json())["processing_cost"] == 3.9e-06  # as the API sends it


class DetailedProvider(EchoProvider):
    """Answers with token details, in the chat vocabulary for even lines and the Responses one for odd."""

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        n = int(body["messages"][0]["content"])
        if n % 2:
            usage = {
                "input_tokens": 10,
                "output_tokens": 5,
                "total_tokens": 15,
                "input_tokens_details": {"cached_tokens": 4},
                "output_tokens_details": {"reasoning_tokens": 2},
            }
        else:
            usage = {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 6},
                "completion_tokens_details": {"reasoning_tokens": 1},
            }
        return Outcome.answer(200, {"echo": n, "usage": usage})


def test_usage_sums_cached_and_reasoning_tokens_in_both_vocabularies(store: Store, batch: BatchRecord) -> None:
    from openai.types import Batch

    chunk = planned(store, batch)[0]
    worker(store, DetailedProvider()).run(batch.id, chunk, 0)
    finalize(store, lambda kind, detail: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    usage = Batch.model_validate(public(BatchObject, ended).model_dump(mode="json"), strict=True).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (100, 50, 150)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (50, 15)
    assert (ended.usage.prompt_tokens, ended.usage.completion_tokens) == (100, 50)
