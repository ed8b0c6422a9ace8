"""Throttling slows a batch, never fails it, and never starves the API (the real stack on the local cloud).

The local cloud runs the smallest account that can reserve concurrency for the api function (Lambda keeps
100 of any account unreserved) with ASL retry intervals scaled down (`retry_interval_scale`), so that long retry
policies run in seconds. Throttles are injected deterministically (`limits.inject_throttles`: the next N
worker invocations are refused with TooManyRequestsException, as a full account refuses them), and the
account's unreserved concurrency is taken by another workload (`limits.hold`) where a test needs it full.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from openai import OpenAI

from localcloud import lambdas
from localcloud.cloud import LocalCloud
from tests.e2e.runs import assert_each_line_once_in_order, create_job, jsonl, request_line, run

ROOT = Path(__file__).resolve().parents[2]
API_RESERVED = 5
ACCOUNT_CONCURRENCY = 100 + API_RESERVED
WORKER_CONCURRENCY = 4
LINES_PER_CHUNK = 10
URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    parameters = {
        "LinesPerChunk": str(LINES_PER_CHUNK),
        "WorkerConcurrency": str(WORKER_CONCURRENCY),
        "ApiReservedConcurrency": str(API_RESERVED),
    }
    with LocalCloud(
        parameters=parameters, account_concurrency=ACCOUNT_CONCURRENCY, retry_interval_scale=0.0005
    ) as running:
        yield running


@pytest.fixture
def client(cloud: LocalCloud) -> OpenAI:
    return OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)


def lam(cloud: LocalCloud) -> Any:
    # No SDK retries: a throttle is seen as the answer it is.
    return cloud.client("lambda", config=Config(retries={"total_max_attempts": 1}))


def test_a_throttled_batch_completes_with_every_line_once(cloud: LocalCloud, client: OpenAI) -> None:
    # A job that asks for far more concurrency than the account has (400 chunks in flight unbounded).
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id, provider={"type": "mock"},
                     sla={"completion_window": "24h", "max_concurrency": 10_000})  # fmt: skip
    custom_ids = [f"r{i}" for i in range(10 * LINES_PER_CHUNK)]
    data = jsonl([request_line(c, URL, c) for c in custom_ids])
    worker = cloud.stack.function("WorkerFunction").name
    # More throttles than 10 chunks can absorb with a short retry policy (7 attempts each): some chunk
    # must be throttled many times over, as when other batches hold the account's concurrency.
    lambdas.limits.inject_throttles(worker, 10 * 7 + 1)

    done = run(client, data, endpoint=URL, job_id=job)

    assert done.batch.status == "completed", done.batch
    assert_each_line_once_in_order(done, custom_ids)
    assert lambdas.limits.throttled[worker] == 10 * 7 + 1
    # The job asked for 400 chunks in flight; the stack's WorkerConcurrency bounds the Map.
    sfn = cloud.client("stepfunctions")
    execution = next(
        e
        for e in sfn.list_executions(stateMachineArn=cloud.stack.state_machines["BatchStateMachine"])["executions"]
        if e["name"] == done.batch.id
    )
    map_run = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"][0]
    assert sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["maxConcurrency"] == WORKER_CONCURRENCY


def test_the_api_answers_while_batches_hold_all_unreserved_concurrency(cloud: LocalCloud) -> None:
    api = cloud.stack.function("ApiFunction").name
    plan = cloud.stack.function("PlanFunction").name
    # The sample HTTP API event (no key: the function answers 401, which shows it ran).
    event = json.loads((ROOT / "events" / "api_get_file.json").read_text())

    with lambdas.limits.hold("other-batches", ACCOUNT_CONCURRENCY - API_RESERVED):
        answer = lam(cloud).invoke(FunctionName=api, Payload=json.dumps(event).encode())
        with pytest.raises(ClientError) as throttled:
            lam(cloud).invoke(FunctionName=plan, Payload=b"{}")

    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read())["statusCode"] == 401
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
