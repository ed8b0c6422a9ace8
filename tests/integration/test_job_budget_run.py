"""A job's backend is filled, never flooded: the real stack on an in-process local cloud, a loopback backend.

Two batches on one job share its max_concurrency (the backend counts what it has in flight and its peak);
a backend that answers 429 over N in flight brings the job's limit down near N, and not a line is lost.
Integration, not e2e: the local cloud runs in this process so the test can read each renewal's limit, and
its workers get their own settings (a short renewal interval, enough attempts to outlast the first 429s).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from batchline import budget as budget_logic
from localcloud.cloud import LocalCloud
from tests.e2e.runs import assert_each_line_once_in_order, create_job, jsonl, request_line, results, submit, wait
from tests.fakes.openai_server import FakeOpenAI

URL = "/v1/chat/completions"
LINES_PER_CHUNK = 40
WORKER_ENV = {
    "STATUS_CHECK_INTERVAL": "0.1",
    "BUDGET_LEASE_SECONDS": "30",
    "REQUEST_TIMEOUT": "10",
    # A line throttled while the limit comes down is retried, not failed: every line must end answered.
    "MAX_ATTEMPTS": "20",
    # The backend's signal here is its 429s. Its latency is 50 ms, and what the workers measure on top is this
    # one-process emulator's scheduling on a shared machine, which is not the backend's: only a median over
    # 2 s would count as rising (tests/unit/test_budget.py holds the latency rule).
    "BUDGET_LATENCY_FLOOR": "1.0",
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    saved = {name: os.environ.get(name) for name in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        parameters = {"LinesPerChunk": str(LINES_PER_CHUNK), "JobBudgets": "true"}
        with LocalCloud(parameters=parameters, retry_interval_scale=0.01) as running:
            yield running
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def client(cloud: LocalCloud) -> OpenAI:
    return OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)


class Limits:
    """Each renewal's limit, in order, as the workers computed it (wrapping the budget's pure step)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[float] = []
        step = budget_logic.renew

        def recording(*args: Any, **kwargs: Any) -> tuple[budget_logic.Budget, int]:
            after, grant = step(*args, **kwargs)
            self.seen.append(after.limit)
            return after, grant

        monkeypatch.setattr(budget_logic, "renew", recording)


def test_two_batches_on_one_job_never_send_more_than_its_max_concurrency(
    cloud: LocalCloud, client: OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(latency=0.05) as fake:
        job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                         provider={"type": "openai", "base_url": fake.base_url},
                         sla={"completion_window": "24h", "max_concurrency": 8})  # fmt: skip
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
    assert arrivals.index("second") < len(arrivals) - 1 - arrivals[::-1].index("first")
    # Without the job's budget each batch's worker keeps requests_per_worker (25) in flight, whatever the job
    # asks: 38 at once were seen before the budget.
    assert fake.peak_in_flight <= 8


def test_a_backend_that_throttles_over_n_in_flight_brings_the_limit_near_n_and_loses_no_line(
    cloud: LocalCloud, client: OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 5
    limits = Limits(monkeypatch)
    with FakeOpenAI(latency=0.05, throttle_above=n) as fake:
        job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                         provider={"type": "openai", "base_url": fake.base_url},
                         sla={"completion_window": "24h", "max_concurrency": 16})  # fmt: skip
        custom_ids = [f"r{i}" for i in range(10 * LINES_PER_CHUNK)]
        batch = submit(client, jsonl([request_line(c, URL, c) for c in custom_ids]), endpoint=URL, job_id=job)
        run_ = results(client, wait(client, batch.id, timeout=300))
        throttled = [r.fault.status == 429 for r in fake.requests]

    assert run_.batch.status == "completed", run_.batch
    assert_each_line_once_in_order(run_, custom_ids)
    assert not run_.errors
    # It was flooded at first (16 allowed, 5 taken), then the limit came down and stayed near n.
    assert fake.throttled > 0
    first_decrease = next(i for i, limit in enumerate(limits.seen) if limit < 16)
    settled = sorted(limits.seen[first_decrease:])
    # It never floods the backend again, and it stays near n: the median within [n/2, n+1] (a sawtooth
    # between (n+1)/2 and n+1 as it probes), never under n/2 for more than a tenth of the renewals.
    assert settled[-1] <= n + 3
    assert n / 2 <= settled[len(settled) // 2] <= n + 1
    assert sum(limit < n / 2 for limit in settled) <= len(settled) // 10
    # And the backend throttled less once it had: the last third of its requests against the first.
    third = len(throttled) // 3
    assert sum(throttled[-third:]) < sum(throttled[:third])
