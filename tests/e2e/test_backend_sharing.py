"""A job's backend is filled, never flooded: the stack as `make local` runs it, a loopback backend.

The job's batches share its `sla.max_concurrency` (the backend counts what it has in flight, and its peak);
a backend that answers 429 over N in flight brings what it sees in flight down near N, and not a line is
lost. All of it is seen from outside, as a backend operator would see it: the backend's own counts.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.e2e.conftest import LocalCloudProcess, local_cloud_process
from tests.e2e.runs import (
    assert_each_line_once_in_order,
    create_job,
    create_tenant,
    jsonl,
    request_line,
    results,
    submit,
    wait,
)
from tests.fakes.openai_server import FakeOpenAI, RecordedRequest

URL = "/v1/chat/completions"
LINES_PER_CHUNK = 40
# Longest a request is held at the backend (the workers' REQUEST_TIMEOUT is 10 s; the second batch sends
# within a few renewals of a tenth of a second).
HOLD_SECONDS = 8.0
# What this stack's workers are given (a stack sets them as the functions' variables).
WORKER_ENV = {
    # Renewals every tenth of a second, so a run of a few hundred lines sees many of them.
    "STATUS_CHECK_INTERVAL": "0.1",
    "REQUEST_TIMEOUT": "10",
    # A line throttled while the limit comes down is retried, not failed: every line must end answered.
    "MAX_ATTEMPTS": "20",
    # The backend's signal here is its 429s. Its latency is 50 ms, and what the workers measure on top is this
    # one-process emulator's scheduling on a shared machine, which is not the backend's: only a median over
    # 2 s would count as rising (tests/unit/test_budget.py holds the latency rule).
    "BUDGET_LATENCY_FLOOR": "1.0",
}


@pytest.fixture(scope="module")
def sharing_cloud() -> Iterator[LocalCloudProcess]:
    yield from local_cloud_process(environment=WORKER_ENV)


@pytest.fixture(scope="module")
def tenant(sharing_cloud: LocalCloudProcess) -> dict[str, str]:
    return create_tenant(sharing_cloud.base_url, sharing_cloud.admin_key, "sharing")


@pytest.fixture
def client(sharing_cloud: LocalCloudProcess, tenant: dict[str, str]) -> OpenAI:
    return OpenAI(base_url=sharing_cloud.base_url, api_key=tenant["key"], max_retries=0)


def _job(cloud: LocalCloudProcess, tenant: dict[str, str], fake: FakeOpenAI, max_concurrency: int) -> str:
    sla = {"completion_window": "24h", "max_concurrency": max_concurrency, "lines_per_chunk": LINES_PER_CHUNK}
    return create_job(cloud.base_url, cloud.admin_key, tenant["id"],
                      provider={"type": "openai", "base_url": fake.base_url}, sla=sla)  # fmt: skip


@pytest.mark.timeout(400)
def test_two_batches_on_one_job_never_send_more_than_its_max_concurrency(
    sharing_cloud: LocalCloudProcess, tenant: dict[str, str], client: OpenAI
) -> None:
    second_sending = threading.Event()
    held: list[str] = []

    def overlap(request: RecordedRequest) -> None:
        # The first batch's first 4 requests wait at the backend until the second batch sends: the batches
        # surely run at once, and the second can only send once the first gave half the budget back.
        custom_id = request.body["messages"][0]["content"]
        if custom_id.startswith("second"):
            second_sending.set()
        elif len(held) < 4:
            held.append(custom_id)
            assert second_sending.wait(HOLD_SECONDS), "the second batch never sent while the first held 4"

    with FakeOpenAI(latency=0.05) as fake:
        fake.before_answer = overlap
        job = _job(sharing_cloud, tenant, fake, 8)
        ids = {name: [f"{name}-{i}" for i in range(6 * LINES_PER_CHUNK)] for name in ("first", "second")}
        batches = {
            name: submit(client, jsonl([request_line(c, URL, c) for c in custom_ids]), endpoint=URL, job_id=job)
            for name, custom_ids in ids.items()
        }
        done = {name: results(client, wait(client, b.id, timeout=300)) for name, b in batches.items()}
        arrivals = [r.body["messages"][0]["content"].partition("-")[0] for r in fake.requests]

    for name, run_ in done.items():
        assert run_.batch.status == "completed", run_.batch
        assert_each_line_once_in_order(run_, ids[name])
        assert not run_.errors
    # The batches ran at the same time: the second's requests began before the first's ended.
    assert second_sending.is_set() and len(held) == 4
    assert arrivals.index("second") < len(arrivals) - 1 - arrivals[::-1].index("first")
    # Without the job's budget each batch's workers keep up to 8 in flight each, whatever its other
    # batches do: 16 at once were seen when budgets could be turned off.
    assert fake.peak_in_flight <= 8


@pytest.mark.timeout(400)
def test_a_backend_that_throttles_over_n_in_flight_is_brought_near_n_and_loses_no_line(
    sharing_cloud: LocalCloudProcess, tenant: dict[str, str], client: OpenAI
) -> None:
    n = 5
    with FakeOpenAI(latency=0.05, throttle_above=n) as fake:
        job = _job(sharing_cloud, tenant, fake, 16)
        custom_ids = [f"r{i}" for i in range(10 * LINES_PER_CHUNK)]
        batch = submit(client, jsonl([request_line(c, URL, c) for c in custom_ids]), endpoint=URL, job_id=job)
        run_ = results(client, wait(client, batch.id, timeout=300))
        seen = fake.requests

    assert run_.batch.status == "completed", run_.batch
    assert_each_line_once_in_order(run_, custom_ids)
    assert not run_.errors
    # It was flooded at first (16 allowed, 5 taken), then sent less and throttled less.
    throttled = [r.fault.status == 429 for r in seen]
    third = len(seen) // 3
    assert sum(throttled[:third]) > 0
    assert sum(throttled[-third:]) < sum(throttled[:third])
    # Once settled (the last half of its requests), the backend is filled, not flooded: a 429 now and then as
    # the limit probes above n (2-3% of requests here; 32% without budgets, when they could be turned off and
    # every worker kept sending and only backed off), and what it had in flight as each request arrived is near n.
    settled = seen[len(seen) // 2 :]
    assert sum(r.fault.status == 429 for r in settled) <= len(settled) // 10
    assert n / 2 <= statistics.median(r.in_flight for r in settled) <= n + 1
