"""A tenant's enqueued requests (lines of its non-terminal batches): counted at plan, released once at finalize."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchline import batches, files
from batchline.finalizing import finalize
from batchline.models import BatchCreate, BatchRecord
from batchline.planning import plan
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant

URL = "/v1/chat/completions"


def new_batch(store: Store, runs: RecordedRuns, tenant: Tenant, lines: int) -> BatchRecord:
    data = b"".join(
        json.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": URL,
                "body": {"messages": [{"role": "user", "content": "hi"}]},
            }
        ).encode()
        + b"\n"
        for i in range(lines)
    )
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create = BatchCreate(input_file_id=record.id, endpoint=URL, completion_window="24h", job_id=tenant.job.id)
    return batches.create_batch(store, runs, tenant.id, create)


def planned(store: Store, batch: BatchRecord, enqueued_requests: int = 1_000) -> dict[str, Any]:
    return plan(store, batch.id, lines_per_chunk=10, requests_per_worker=25, enqueued_requests=enqueued_requests)


def enqueued(store: Store, tenant: Tenant) -> int:
    item = store._table.get("tenant", tenant.id)
    assert item is not None
    return int(item.get("enqueued", 0))


def no_publish(_: str, __: dict[str, Any]) -> None:
    pass


def test_a_batch_over_the_tenants_enqueued_limit_fails_in_validation(
    store: Store, runs: RecordedRuns, tenant: Tenant
) -> None:
    store.tenants.update(tenant.id, limits={"enqueued_requests": 5})
    first = new_batch(store, runs, tenant, 3)
    assert planned(store, first)["status"] == "in_progress"
    assert enqueued(store, tenant) == 3
    second = new_batch(store, runs, tenant, 3)  # 3 + 3 > 5
    assert planned(store, second)["status"] == "failed"
    failed = store.batches.get_unscoped(second.id)
    assert failed.errors is not None
    [error] = failed.errors.data
    assert (error.code, error.line) == ("request_limit_exceeded", None)
    assert "5" in error.message
    assert enqueued(store, tenant) == 3  # the refused batch holds nothing
    # The stack's default applies to a tenant without its own limit.
    other = new_batch(store, runs, tenant, 2)
    store.tenants.update(tenant.id, limits={"enqueued_requests": None})
    assert planned(store, other, enqueued_requests=4)["status"] == "failed"


def test_one_batch_larger_than_the_limit_fails_whatever_is_enqueued(
    store: Store, runs: RecordedRuns, tenant: Tenant
) -> None:
    store.tenants.update(tenant.id, limits={"enqueued_requests": 2})
    batch = new_batch(store, runs, tenant, 3)
    assert planned(store, batch)["status"] == "failed"
    assert enqueued(store, tenant) == 0


def test_plan_run_again_counts_the_lines_once(store: Store, runs: RecordedRuns, tenant: Tenant) -> None:
    batch = new_batch(store, runs, tenant, 4)
    planned(store, batch)
    planned(store, batch)
    assert enqueued(store, tenant) == 4


@pytest.mark.parametrize("ending", ["cancelled", "failed", "expired"])
def test_a_batch_releases_its_lines_once_when_it_ends_however_often_finalize_runs(
    store: Store, runs: RecordedRuns, tenant: Tenant, ending: str
) -> None:
    store.tenants.update(tenant.id, limits={"enqueued_requests": 6})
    batch = new_batch(store, runs, tenant, 4)
    planned(store, batch)
    if ending == "cancelled":
        batches.cancel_batch(store, tenant.id, batch.id)
    if ending == "expired":
        store._table.update("batch", batch.id, set_={"expires_at": 1})
    fault = {"Error": "States.TaskFailed", "Cause": "boom"} if ending == "failed" else None
    for _ in range(3):  # Step Functions retries finalize; each run resumes
        assert finalize(store, no_publish, batch.id, fault)["status"] == ending
    assert enqueued(store, tenant) == 0
    # The room is back: a batch that fits only without the first one now plans.
    assert planned(store, new_batch(store, runs, tenant, 5))["status"] == "in_progress"
    assert enqueued(store, tenant) == 5


def test_a_batch_cancelled_before_planning_releases_nothing(store: Store, runs: RecordedRuns, tenant: Tenant) -> None:
    held = new_batch(store, runs, tenant, 2)
    planned(store, held)
    batch = new_batch(store, runs, tenant, 3)
    batches.cancel_batch(store, tenant.id, batch.id)
    assert planned(store, batch)["status"] == "cancelling"
    finalize(store, no_publish, batch.id, None)
    assert enqueued(store, tenant) == 2
