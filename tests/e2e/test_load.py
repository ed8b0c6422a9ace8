"""The local cloud holds under load: concurrent batches fail only for reasons AWS would fail them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx  # imported before the SDK's threads need it (the SDK resolves it lazily)
import pytest
from openai import OpenAI
from openai.types import Batch

from tests.e2e.conftest import LocalCloudProcess, local_cloud_process
from tests.e2e.runs import TERMINAL, create_job, jsonl, request_line

BATCHES = 300
# Each batch is tiny: the test is about concurrency in the cloud, not throughput of one batch.
LINES = 2
DEADLINE = 600.0
# Concurrent clients. On AWS each request has a Lambda of its own; here every request, function and
# execution shares one process and its GIL, so a request's wall time grows with what is in flight.
CLIENTS = 8
# With 300 executions in flight, a request's wall time here is mostly waiting on this one-process
# emulator (one GIL, serialized moto), which AWS does not have: seen once past API Gateway's 30 s in a
# make test run. So this cloud stretches the integration timeout; test_api_gateway.py and
# test_apigateway.py pin the 30 s.
API_TIMEOUT_SECONDS = "600"
# 300 batches at once are a large account's load: on a new account's quota (10), the local cloud's default,
# most of their invocations would wait out throttling instead (tests/integration/test_batch_throttling.py).
ACCOUNT_CONCURRENCY = "1000"


@pytest.fixture(scope="module")
def loaded_cloud() -> Iterator[LocalCloudProcess]:
    yield from local_cloud_process("--api-timeout", API_TIMEOUT_SECONDS, "--account-concurrency", ACCOUNT_CONCURRENCY)


# uvicorn's access log line of a 5xx answer, or anything logged with a traceback.
PROBLEM = re.compile(r'" 5\d\d\b|Traceback|Error:|File "')


def _run_all(client: OpenAI, job: str, expected: dict[str, list[str]]) -> dict[str, tuple[str, list[str]]]:
    """Create every batch concurrently, poll until all are terminal; name -> (status, output custom_ids)."""

    def create(name: str) -> Batch:
        lines = [request_line(custom_id, "/v1/chat/completions", custom_id) for custom_id in expected[name]]
        uploaded = client.files.create(file=(f"{name}.jsonl", jsonl(lines)), purpose="batch")
        return client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
            extra_body={"job_id": job}, metadata={"name": name},
        )  # fmt: skip

    def output_ids(batch: Batch) -> list[str]:
        if batch.output_file_id is None:
            return []
        return [json.loads(line)["custom_id"] for line in client.files.content(batch.output_file_id).text.splitlines()]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        pending = {name: batch.id for name, batch in zip(expected, pool.map(create, expected), strict=True)}
        final: dict[str, Batch] = {}
        while pending:
            assert time.monotonic() - started < DEADLINE, f"{len(pending)} batches not terminal after {DEADLINE} s"
            polled = dict(zip(pending, pool.map(client.batches.retrieve, pending.values()), strict=True))
            for name, batch in polled.items():
                if batch.status in TERMINAL:
                    final[name] = batch
                    del pending[name]
            if pending:
                time.sleep(0.5)
        outputs = dict(zip(final, pool.map(output_ids, final.values()), strict=True))
    print(f"{len(expected)} batches of {LINES} lines in {time.monotonic() - started:.1f} s")
    assert all(batch.error_file_id is None for batch in final.values())
    return {name: (batch.status, outputs[name]) for name, batch in final.items()}


@pytest.mark.timeout(900)
def test_300_concurrent_batches_all_complete_with_no_server_error(loaded_cloud: LocalCloudProcess) -> None:
    local_cloud = loaded_cloud
    admin = {"Authorization": f"Bearer {local_cloud.admin_key}"}
    tenant = httpx.post(f"{local_cloud.base_url}/admin/tenants", headers=admin, json={"name": "load"}).json()
    job = create_job(local_cloud.base_url, local_cloud.admin_key, tenant["id"],
                     provider={"type": "mock", "latency_ms": 0})  # fmt: skip
    # No retries and a generous timeout: a 5xx must show, not be retried away.
    client = OpenAI(base_url=local_cloud.base_url, api_key=tenant["api_key"]["key"], max_retries=0, timeout=120)
    expected = {f"b{b}": [f"b{b}-l{i}" for i in range(LINES)] for b in range(BATCHES)}
    mark = len(local_cloud.history)
    try:
        runs = _run_all(client, job, expected)
    finally:
        problems = [line for line in local_cloud.lines_since(mark) if PROBLEM.search(line)]
        print("\n".join(problems[:400]))

    assert problems == []
    assert {name: status for name, (status, _) in runs.items() if status != "completed"} == {}
    assert {name: sorted(ids) for name, (_, ids) in runs.items()} == expected
