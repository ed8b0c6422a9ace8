"""Every answer body a provider builds validates, strictly, with the openai SDK's own type for its endpoint.

The mock's and Bedrock's bodies are built here, not relayed: the SDK's models are what clients parse an
output line's `response.body` with, so a missing required field is a client's crash.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from openai import BaseModel as SdkModel
from openai.types import Completion, CreateEmbeddingResponse, ModerationCreateResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from batchline.providers.bedrock import BedrockProvider
from batchline.providers.mock import MockProvider
from tests.unit.test_providers_bedrock import MODEL_ID, converse_answer, provider

TOOL = {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}, "strict": True}
BODIES: dict[str, tuple[type[SdkModel], dict[str, Any]]] = {
    "/v1/chat/completions": (ChatCompletion, {"messages": [{"role": "user", "content": "hi"}]}),
    "/v1/completions": (Completion, {"prompt": "hi"}),
    "/v1/embeddings": (CreateEmbeddingResponse, {"input": ["hi", "there"]}),
    "/v1/responses": (Response, {"input": "hi", "tools": [TOOL], "tool_choice": "required"}),
    "/v1/moderations": (
        ModerationCreateResponse,
        {"input": [{"type": "text", "text": "a calm day"}, {"type": "image_url", "image_url": {"url": "x"}}]},
    ),
}


def mock_body(url: str, body: dict[str, Any]) -> dict[str, Any]:
    outcome = asyncio.run(MockProvider("mock-model").send(url, body, deadline=time.monotonic() + 10))
    assert outcome.status_code == 200, outcome.body
    assert outcome.body is not None
    return outcome.body


@pytest.mark.parametrize("url", BODIES)
def test_the_mocks_answers_are_the_sdks_types(url: str) -> None:
    sdk_type, body = BODIES[url]
    sdk_type.model_validate(mock_body(url, body), strict=True)


def test_a_responses_answer_echoes_the_requests_tools_as_openai_does() -> None:
    answer = Response.model_validate(mock_body("/v1/responses", BODIES["/v1/responses"][1]), strict=True)
    assert answer.tool_choice == "required"
    assert [tool.type for tool in answer.tools] == ["function"]
    assert answer.parallel_tool_calls is True


def test_the_mock_flags_a_text_that_names_a_category() -> None:
    answer = ModerationCreateResponse.model_validate(
        mock_body("/v1/moderations", {"input": ["a calm day", "pure violence here"]}), strict=True
    )
    calm, violent = answer.results
    assert not calm.flagged
    assert violent.flagged and violent.categories.violence and not violent.categories.hate
    assert violent.category_scores.violence == 0.9
    assert calm.category_applied_input_types.violence == ["text"]


@pytest.mark.parametrize("url", ["/v1/chat/completions", "/v1/completions", "/v1/responses"])
def test_bedrocks_answers_are_the_sdks_types_with_its_cache_reads(url: str) -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    answer = converse_answer([{"text": "Bonjour."}])
    # Bedrock counts cache reads and writes apart from inputTokens; its total counts them all.
    answer["usage"] = {
        "inputTokens": 5,
        "outputTokens": 7,
        "totalTokens": 5 + 7 + 30 + 2,
        "cacheReadInputTokens": 30,
        "cacheWriteInputTokens": 2,
    }
    with Stubber(client) as stub:
        stub.add_response("converse", answer)
        bedrock: BedrockProvider = provider(client, MODEL_ID)

        async def go() -> Any:
            try:
                return await bedrock.send(
                    url, {k: v for k, v in BODIES[url][1].items() if k != "tools"}, deadline=time.monotonic() + 10
                )
            finally:
                await bedrock.aclose()

        outcome = asyncio.run(go())
    sdk_type, _ = BODIES[url]
    parsed: Any = sdk_type.model_validate(outcome.body, strict=True)
    usage = parsed.usage
    if url == "/v1/responses":
        assert (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.total_tokens) == (37, 30, 44)
    else:
        assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens, usage.total_tokens) == (37, 30, 44)
