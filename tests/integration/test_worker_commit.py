"""A worker's commit that DynamoDB cancels for a TransactionConflict is retried by itself, never resent.

Under fan-out every worker's commit updates the one batch item, so DynamoDB cancels some of them with
a `TransactionConflict` reason. The fault is injected at the boto3 boundary, before the call leaves.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from batchline.errors import ServerError
from batchline.finalizing import finalize
from batchline.models import BatchRecord, Chunk
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.integration.test_run_steps import EchoProvider, planned, read_lines
from tests.integration.test_run_steps import batch as batch  # the fixture


class Conflicts:
    """Cancels the next `times` segment commits as DynamoDB does when another write hit the batch item."""

    def __init__(self, store: Store, times: int) -> None:
        self.left = times
        self.injected = 0
        store._table.resource.meta.client.meta.events.register("before-call.dynamodb.TransactWriteItems", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        if self.left <= 0 or "#segments" not in json.dumps(params, default=str):
            return None  # the real call
        self.left -= 1
        self.injected += 1
        reasons = [{"Code": "None", "Message": "None"}, {"Code": "TransactionConflict", "Message": "conflict"}]
        error = {
            "Code": "TransactionCanceledException",
            "Message": "Transaction cancelled: [None, TransactionConflict]",
        }
        http = type("Http", (), {"status_code": 400, "headers": {}})()
        return http, {"Error": error, "CancellationReasons": reasons, "ResponseMetadata": {"HTTPStatusCode": 400}}


def run(store: Store, provider: EchoProvider, sleeps: list[float]) -> ChunkRun:
    return ChunkRun(store, lambda job: provider, requests_in_flight=4, remaining_seconds=lambda: 900.0,
                    reserve_seconds=10.0, status_check_interval=0.0, sleep=sleeps.append)  # fmt: skip


def test_a_conflicting_commit_is_retried_with_backoff_and_sends_nothing_again(store: Store, batch: BatchRecord) -> None:
    chunk = planned(store, batch)[0]
    conflicts = Conflicts(store, times=3)
    provider = EchoProvider()
    sleeps: list[float] = []
    assert run(store, provider, sleeps).run(batch.id, chunk, 0) == whole(chunk)
    assert conflicts.injected == 3
    assert len(sleeps) == 3
    assert all(0 <= s <= 5 for s in sleeps)
    assert provider.sent == [str(i) for i in range(10)]
    assert len(store.segments.of_batch(batch.id)) == 1
    assert store.batches.get_unscoped(batch.id).request_counts.completed == 10


def test_a_commit_that_keeps_failing_is_committed_by_the_next_invocation_without_resending(
    store: Store, batch: BatchRecord
) -> None:
    chunk = planned(store, batch)[0]
    conflicts = Conflicts(store, times=1000)
    provider = EchoProvider()
    sleeps: list[float] = []
    with pytest.raises(ServerError):  # the invocation fails; Step Functions retries it
        run(store, provider, sleeps).run(batch.id, chunk, 0)
    assert conflicts.injected < 1000  # bounded
    assert store.batches.get_unscoped(batch.id).request_counts.completed == 0
    conflicts.left = 0  # the conflicts pass; the state machine's Retry invokes the worker again
    assert run(store, provider, sleeps).run(batch.id, chunk, 0) == whole(chunk)
    assert provider.sent == [str(i) for i in range(10)]  # each line went upstream once
    assert len(store.segments.of_batch(batch.id)) == 1
    finalize(store, lambda *_: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    assert [line["custom_id"] for line in read_lines(store, ended, ended.output_file_id)] == [
        f"r{i}" for i in range(10)
    ]
    assert (ended.request_counts.completed, ended.request_counts.failed) == (10, 0)
    assert ended.usage.total_tokens == 30


def test_a_commit_that_never_went_through_is_merged_by_finalize_and_never_sent_again(
    store: Store, batch: BatchRecord
) -> None:
    chunk = planned(store, batch)[0]
    Conflicts(store, times=1000)
    provider = EchoProvider()
    for _ in range(4):  # the first try and the state machine's three retries: the Map child fails
        with contextlib.suppress(ServerError):
            run(store, provider, []).run(batch.id, chunk, 0)
    assert provider.sent == [str(i) for i in range(10)]
    finalize(store, lambda *_: None, batch.id, {"Error": "States.TaskFailed", "Cause": "commit"})
    ended = store.batches.get_unscoped(batch.id)
    # The answers were paid for: finalize counts and delivers them rather than calling them failed.
    out = read_lines(store, ended, ended.output_file_id)
    assert [line["custom_id"] for line in out] == [f"r{i}" for i in range(10)]
    assert ended.error_file_id is None
    assert (ended.status, ended.request_counts.completed, ended.request_counts.failed) == ("failed", 10, 0)
    assert ended.usage.total_tokens == 30


def whole(chunk: Chunk) -> dict[str, object]:
    """The answer of an invocation that answered the whole chunk."""
    return {"cursor": chunk.line_count, "offset": chunk.end_byte, "done": True}
