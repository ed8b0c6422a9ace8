"""A batch whose run cannot be started says so: failed with batch_start_failed, its input released.

What "cannot be started" means is an AWS call that failed: Step Functions refused it (a ClientError) or
it never got an answer (a BotoCoreError such as a connection error). A defect of our own is not that, and
is not dressed up as one.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from batchline import batches, files
from batchline.errors import ServerError
from batchline.models import BatchCreate
from batchline.runs import Runs
from batchline.store import Store
from tests.integration.conftest import Tenant

URL = "/v1/chat/completions"
MISSING_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:no-such-machine"


class Unreachable:
    """A Step Functions client that never gets an answer."""

    def start_execution(self, **kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")


class Broken:
    def start_execution(self, **kwargs: Any) -> None:
        raise TypeError("a defect of ours")


def create(store: Store, tenant: Tenant, runs: Runs) -> str:
    data = b'{"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    request = BatchCreate(input_file_id=record.id, endpoint=URL, completion_window="24h", job_id=tenant.job.id)
    batches.create_batch(store, runs, tenant.id, request, batch_id="batch_start_test")
    return record.id


@pytest.mark.parametrize(
    "runs",
    [lambda: Runs(MISSING_MACHINE), lambda: Runs(MISSING_MACHINE, client=Unreachable())],
    ids=["refused", "unreachable"],
)
def test_a_run_that_cannot_start_fails_the_batch_and_releases_its_input(
    runs: Any, store: Store, tenant: Tenant
) -> None:
    with pytest.raises(ServerError):
        create(store, tenant, runs())
    batch = store.batches.get(tenant.id, "batch_start_test")
    assert batch.status == "failed"
    assert batch.errors is not None
    assert [e.code for e in batch.errors.data] == ["batch_start_failed"]
    assert store._table.get("file", batch.input_file_id).get("in_use") == 0  # type: ignore[union-attr]


def test_a_defect_while_starting_is_not_reported_as_a_start_failure(store: Store, tenant: Tenant) -> None:
    with pytest.raises(TypeError):
        create(store, tenant, Runs(MISSING_MACHINE, client=Broken()))
    assert store.batches.get(tenant.id, "batch_start_test").status == "validating"
