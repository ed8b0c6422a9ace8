"""Batches run end to end on the local cloud: the real state machine, real handlers, the official SDK."""

from __future__ import annotations

import pytest
from openai import BaseModel as SdkModel
from openai import OpenAI
from openai.types import Completion, CreateEmbeddingResponse, ModerationCreateResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from batchline.providers.mock import mock_fails
from localcloud import LocalCloud
from tests.e2e.runs import (
    assert_each_line_once_in_order,
    create_job,
    jsonl,
    request_line,
    run,
    usage_of,
)
from tests.fakes.openai_server import ENDPOINTS, FakeOpenAI, fake_answer

SDK_TYPES: dict[str, type[SdkModel]] = {
    "/v1/chat/completions": ChatCompletion,
    "/v1/completions": Completion,
    "/v1/embeddings": CreateEmbeddingResponse,
    "/v1/responses": Response,
    "/v1/moderations": ModerationCreateResponse,
}


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> OpenAI:
    return OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)


@pytest.fixture(scope="module")
def fake() -> FakeOpenAI:
    with FakeOpenAI() as server:
        yield server


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_batch_completes_on_the_mock_with_exact_counts_usage_and_cost(
    cloud: LocalCloud, client: OpenAI, endpoint: str
) -> None:
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                     provider={"type": "mock", "failure_rate": 0.1}, price_1m_tokens=2.5)  # fmt: skip
    lines = [request_line(f"{endpoint}-{i}", endpoint, f"line {i} of a mock batch") for i in range(150)]
    result = run(client, jsonl(lines), endpoint=endpoint, job_id=job)

    assert result.batch.status == "completed"
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    expected_failures = [line["custom_id"] for line in lines if mock_fails(endpoint, line["body"], 0.1)]
    assert [line["custom_id"] for line in result.errors] == expected_failures
    assert all(line["response"]["status_code"] == 500 for line in result.errors)
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in result.output)
    # What a client parses each line with: the SDK's own type for the endpoint, strictly.
    for line in result.output:
        SDK_TYPES[endpoint].model_validate(line["response"]["body"], strict=True)
    prompt, completion, total = usage_of(result.output)
    usage = result.raw["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (prompt, completion, total)
    assert result.raw["processing_cost"] == pytest.approx(total * 2.5 / 1_000_000)
    assert result.raw["model"] == "test-model"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_batch_completes_against_an_openai_compatible_server(
    cloud: LocalCloud, client: OpenAI, fake: FakeOpenAI, endpoint: str
) -> None:
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id, model="served-model",
                     provider={"type": "openai", "base_url": fake.base_url})  # fmt: skip
    lines = [request_line(f"id-{i}", endpoint, f"question number {i}") for i in range(120)]
    result = run(client, jsonl(lines), endpoint=endpoint, job_id=job)

    assert result.batch.status == "completed"
    assert result.errors == []
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    for line, answer in zip(lines, result.output, strict=True):
        expected = fake_answer(endpoint, {**line["body"], "model": "served-model"})
        body = answer["response"]["body"]
        for volatile in ("created", "created_at"):
            expected.pop(volatile, None)
            body.pop(volatile, None)
        assert body == expected  # the upstream's body, untouched
    prompt, completion, total = usage_of(result.output)
    usage = result.raw["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (prompt, completion, total)
    assert result.raw["processing_cost"] == pytest.approx(total * 0.5 / 1_000_000)
