"""A batch's input file is released once it ends, even when DynamoDB cancels the release for contention.

The release is a transaction on the batch and its input file; another batch's create or release on the
same file at the same moment makes DynamoDB cancel it with `TransactionConflict`. That is no "released
already": read as one, the file stayed `in_use` for good (issue 20). The fault is injected at the boto3
boundary, before the call leaves.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchline.data.batches import Batches
from batchline.data.contention import Backoff
from batchline.errors import ServerError
from batchline.finalizing import finalize
from batchline.models import BatchRecord
from batchline.store import Store
from tests.integration.test_run_steps import EchoProvider, planned, worker
from tests.integration.test_run_steps import batch as batch  # the fixture


class CancelledReleases:
    """Cancels the next `times` releases of an input with `reason` on the file's action, as DynamoDB does."""

    def __init__(self, store: Store, times: int, reason: str = "TransactionConflict") -> None:
        self.left = times
        self.reason = reason
        self.injected = 0
        store._table.resource.meta.client.meta.events.register("before-call.dynamodb.TransactWriteItems", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        if self.left <= 0 or "released" not in json.dumps(params, default=str):
            return None  # the real call
        self.left -= 1
        self.injected += 1
        reasons = [{"Code": "None", "Message": "None"}, {"Code": self.reason, "Message": self.reason}]
        error = {"Code": "TransactionCanceledException", "Message": f"Transaction cancelled: [None, {self.reason}]"}
        http = type("Http", (), {"status_code": 400, "headers": {}})()
        return http, {"Error": error, "CancellationReasons": reasons, "ResponseMetadata": {"HTTPStatusCode": 400}}


def in_use(store: Store, batch: BatchRecord) -> int:
    return int(store._table.get("file", batch.input_file_id)["in_use"])  # type: ignore[index]


def ran(store: Store, batch: BatchRecord, sleeps: list[float]) -> None:
    """The batch's lines answered, its waits between tries of a release recorded instead of slept."""
    store.batches = Batches(store._table, backoff=Backoff(attempts=4, sleep=sleeps.append))
    worker(store, EchoProvider()).run(batch.id, planned(store, batch)[0], 0)
    assert in_use(store, batch) == 1


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"])
def test_a_release_cancelled_for_contention_is_retried_and_frees_the_file(
    store: Store, batch: BatchRecord, reason: str
) -> None:
    sleeps: list[float] = []
    ran(store, batch, sleeps)
    conflicts = CancelledReleases(store, times=1, reason=reason)
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "completed"}
    assert conflicts.injected == 1
    assert in_use(store, batch) == 0
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= Backoff.cap
    assert not store.batches.release_input(store.batches.get_unscoped(batch.id))  # still once only
    assert in_use(store, batch) == 0


def test_a_release_that_keeps_conflicting_fails_finalize_whose_retry_frees_the_file(
    store: Store, batch: BatchRecord
) -> None:
    sleeps: list[float] = []
    ran(store, batch, sleeps)
    conflicts = CancelledReleases(store, times=1000)
    with pytest.raises(ServerError):  # the Finalize task fails; the state machine's Retry runs it again
        finalize(store, lambda *_: None, batch.id, None)
    assert conflicts.injected == 4 and len(sleeps) == 3
    assert in_use(store, batch) == 1
    conflicts.left = 0
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "completed"}
    assert in_use(store, batch) == 0


def test_a_release_cancelled_for_another_reason_is_an_error_not_a_release(store: Store, batch: BatchRecord) -> None:
    ran(store, batch, [])
    CancelledReleases(store, times=1, reason="ValidationError")
    with pytest.raises(ServerError):
        store.batches.release_input(store.batches.get_unscoped(batch.id))
    assert in_use(store, batch) == 1
