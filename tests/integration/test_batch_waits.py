"""A worker its job's budget gives no share waits in Step Functions, not in Lambda (the real stack on the local cloud).

A 24h batch's worker holds the job's whole concurrency (its lease written into the stack's table, as that
worker would write it); an unlimited batch's worker then has no share: it leaves with `wait`, and its chunk's
child waits (the state machine's Wait, its seconds scaled by the local cloud's `wait_scale`) and invokes it
again. Once the 24h batch gives its lease back, the next invocation answers the chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from openai import OpenAI

from batchline.budget import Claim, Tuning
from batchline.data.budgets import Holding
from batchline.store import Store
from localcloud import metering
from localcloud.cloud import LocalCloud
from tests.e2e.runs import assert_each_line_once_in_order, create_job, jsonl, request_line, results, submit, wait

URL = "/v1/chat/completions"
MAX_CONCURRENCY = 4
# The state machine's Wait of a chunk whose worker had no share (statemachine/batch.asl.json).
WAIT_STATE = "Wait for a share"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    # Waits a hundredth of AWS's: the template's 30 s is 0.3 s here.
    with LocalCloud(parameters={"LinesPerChunk": "10"}, wait_scale=0.01) as running:
        yield running


def test_a_chunk_whose_worker_has_no_share_waits_and_is_invoked_again_until_its_batch_completes(
    cloud: LocalCloud,
) -> None:
    client = OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)
    sla = {"completion_window": "24h", "max_concurrency": MAX_CONCURRENCY}
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id, provider={"type": "mock"}, sla=sla)
    store = Store(cloud.table_name, cloud.stack.physical_id("FilesBucket"))
    daily = Holding("daily-worker")
    store.budgets.renew(job, daily, Claim("batch_daily", MAX_CONCURRENCY, True, time.time() + 86_400), None,
                        now=time.time(), tuning=Tuning(interval=2.0, lease_seconds=600.0),
                        ceiling=MAX_CONCURRENCY)  # fmt: skip
    custom_ids = [f"r{i}" for i in range(10)]
    before = metering.snapshot()

    batch = submit(client, jsonl([request_line(c, URL, c) for c in custom_ids]), endpoint=URL, job_id=job,
                   window="unlimited")  # fmt: skip
    deadline = time.monotonic() + 60
    while metering.difference(metering.snapshot(), before)["state_transitions"].get(WAIT_STATE, 0) < 2:
        assert time.monotonic() < deadline, "the chunk never waited twice"
        assert client.batches.retrieve(batch.id).request_counts.completed == 0  # type: ignore[union-attr]
        time.sleep(0.05)
    store.budgets.release(job, daily)  # the 24h batch is done
    done = results(client, wait(client, batch.id, timeout=120))

    assert done.batch.status == "completed", done.batch
    assert_each_line_once_in_order(done, custom_ids)
    counted = metering.difference(metering.snapshot(), before)
    worker = counted["lambda"]["WorkerFunction"]["invocations"]
    waits = counted["state_transitions"][WAIT_STATE]
    # Every wait came after an invocation that left, and one more answered the chunk.
    assert worker == waits + 1, counted["state_transitions"]
    kept = store.budgets.get(job)
    assert kept is not None and kept.leases == {}
