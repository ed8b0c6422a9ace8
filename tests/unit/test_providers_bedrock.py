"""The `bedrock` provider on a real bedrock-runtime client whose HTTP layer is a botocore Stubber."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from batchline.models import BedrockProvider as BedrockConfig
from batchline.models import JobRecord
from batchline.providers import REQUEST_TIMEOUT, UPSTREAM_UNAVAILABLE, Outcome, ProviderSettings, make_provider
from batchline.providers.bedrock import BedrockProvider
from batchline.providers.retry import Retrier

MODEL = "nova-lite"
MODEL_ID = "amazon.nova-lite-v1:0"
SETTINGS = ProviderSettings(max_attempts=3)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def client() -> Any:
    return boto3.client("bedrock-runtime", region_name="us-east-1")


@pytest.fixture
def stub(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def provider(client: Any, model_id: str = MODEL_ID, sleeps: Sleeps | None = None) -> BedrockProvider:
    return BedrockProvider(
        MODEL,
        model_id,
        "us-east-1",
        settings=SETTINGS,
        client=client,
        retrier=Retrier(SETTINGS, sleep=sleeps or Sleeps()),
    )


def send(p: BedrockProvider, url: str, body: dict[str, Any]) -> Outcome:
    async def go() -> Outcome:
        try:
            return await p.send(url, body, deadline=time.monotonic() + 10)
        finally:
            await p.aclose()

    return asyncio.run(go())


def converse_answer(
    content: list[dict[str, Any]], stop: str = "end_turn", usage: tuple[int, int, int] = (11, 7, 18)
) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": usage[2]},
        "metrics": {"latencyMs": 120},
        "ResponseMetadata": {"RequestId": "aws-req-1", "HTTPStatusCode": 200},
    }


def streaming(payload: dict[str, Any]) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def invoke_answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"body": streaming(payload), "contentType": "application/json"}


def invoke_params(model_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "modelId": model_id,
        "body": json.dumps(payload),
        "contentType": "application/json",
        "accept": "application/json",
    }


# -------------------------------------------------------------------------------------------- chat


def test_chat_is_translated_to_converse_and_back(client: Any, stub: Stubber) -> None:
    body = {
        "model": "ignored",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "input_text", "text": "Now."}]},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "seed": 3,  # no Converse equivalent: dropped
    }
    expected = {
        "modelId": MODEL_ID,
        "system": [{"text": "Be brief."}, {"text": "Use French."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Bonjour"}]},
            {"role": "user", "content": [{"text": "Weather?"}, {"text": "Now."}]},
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
    }
    stub.add_response("converse", converse_answer([{"text": "Il fait "}, {"text": "beau."}], "max_tokens"), expected)

    out = send(provider(client), "/v1/chat/completions", body)

    assert out.ok and out.status_code == 200 and out.request_id == "aws-req-1"
    assert out.body is not None
    assert out.body["object"] == "chat.completion" and out.body["model"] == MODEL
    assert out.body["id"].startswith("chatcmpl-") and isinstance(out.body["created"], int)
    [choice] = out.body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == "Il fait beau."
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "length"
    assert out.body["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert out.usage() == (11, 7, 18)


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
     ("content_filtered", "content_filter")],
)  # fmt: skip
def test_stop_reason_maps_to_finish_reason(client: Any, stub: Stubber, stop: str, finish: str) -> None:
    stub.add_response("converse", converse_answer([{"text": "x"}], stop))
    out = send(provider(client), "/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]})
    assert out.body is not None and out.body["choices"][0]["finish_reason"] == finish


def test_tool_calls_and_results_round_trip(client: Any, stub: Stubber) -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Now", "parameters": params}}],
        "tool_choice": "required",
        "max_completion_tokens": 20,
    }
    expected = {
        "modelId": MODEL_ID,
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}}],
            },
            {"role": "user", "content": [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}}]},
        ],
        "inferenceConfig": {"maxTokens": 20},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "weather", "description": "Now", "inputSchema": {"json": params}}}],
            "toolChoice": {"any": {}},
        },
    }
    answer = converse_answer(
        [{"toolUse": {"toolUseId": "tu_9", "name": "weather", "input": {"city": "Lyon"}}}], "tool_use"
    )
    stub.add_response("converse", answer, expected)

    out = send(provider(client), "/v1/chat/completions", body)

    assert out.body is not None
    message = out.body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "tu_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lyon"}'}}
    ]
    assert out.body["choices"][0]["finish_reason"] == "tool_calls"


def test_unsupported_content_is_a_400_without_calling_bedrock(client: Any, stub: Stubber) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]}
    out = send(provider(client), "/v1/chat/completions", body)
    assert out.status_code == 400 and out.body is not None
    assert out.body["error"]["type"] == "invalid_request_error"
    assert "image_url" in out.body["error"]["message"]


# ------------------------------------------------------------------------------ completions, responses


def test_completions_prompt_list_is_one_user_message(client: Any, stub: Stubber) -> None:
    expected = {
        "modelId": MODEL_ID,
        "messages": [{"role": "user", "content": [{"text": "Once upon"}, {"text": "a time"}]}],
        "inferenceConfig": {"maxTokens": 5, "stopSequences": ["\n", "."]},
    }
    stub.add_response("converse", converse_answer([{"text": " there was"}], "stop_sequence", (4, 3, 7)), expected)

    out = send(
        provider(client), "/v1/completions", {"prompt": ["Once upon", "a time"], "max_tokens": 5, "stop": ["\n", "."]}
    )

    assert out.body is not None
    assert out.body["object"] == "text_completion" and out.body["model"] == MODEL
    assert out.body["id"].startswith("cmpl-")
    assert out.body["choices"][0]["text"] == " there was" and out.body["choices"][0]["finish_reason"] == "stop"
    assert out.body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_responses_input_items_and_instructions(client: Any, stub: Stubber) -> None:
    body = {
        "instructions": "You are terse.",
        "input": [
            {"role": "developer", "content": "No emojis."},
            {"role": "user", "content": [{"type": "input_text", "text": "Name a color"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Blue"}]},
            {"role": "user", "content": "Another"},
        ],
        "max_output_tokens": 10,
        "temperature": 0,
    }
    expected = {
        "modelId": MODEL_ID,
        "system": [{"text": "You are terse."}, {"text": "No emojis."}],
        "messages": [
            {"role": "user", "content": [{"text": "Name a color"}]},
            {"role": "assistant", "content": [{"text": "Blue"}]},
            {"role": "user", "content": [{"text": "Another"}]},
        ],
        "inferenceConfig": {"maxTokens": 10, "temperature": 0},
    }
    stub.add_response("converse", converse_answer([{"text": "Red"}], usage=(9, 1, 10)), expected)

    out = send(provider(client), "/v1/responses", body)

    assert out.body is not None
    assert out.body["object"] == "response" and out.body["status"] == "completed" and out.body["model"] == MODEL
    assert out.body["id"].startswith("resp_")
    [message] = out.body["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "output_text", "text": "Red", "annotations": []}]
    assert out.body["usage"] == {
        "input_tokens": 9,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 10,
    }
    assert out.usage() == (9, 1, 10)


def test_responses_string_input_cut_short_is_incomplete(client: Any, stub: Stubber) -> None:
    expected = {"modelId": MODEL_ID, "messages": [{"role": "user", "content": [{"text": "Tell a story"}]}]}
    stub.add_response("converse", converse_answer([{"text": "Once"}], "max_tokens"), expected)
    out = send(provider(client), "/v1/responses", {"input": "Tell a story"})
    assert out.body is not None
    assert out.body["status"] == "incomplete"
    assert out.body["incomplete_details"] == {"reason": "max_output_tokens"}


def test_responses_function_call_items(client: Any, stub: Stubber) -> None:
    body = {
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}}],
    }
    expected = {
        "modelId": MODEL_ID,
        "messages": [
            {"role": "user", "content": [{"text": "Weather?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "c1", "name": "weather", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "sunny"}]}}]},
        ],
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]
        },
    }
    stub.add_response("converse", converse_answer([{"text": "It is sunny."}]), expected)
    out = send(provider(client), "/v1/responses", body)
    assert out.body is not None and out.body["output"][0]["content"][0]["text"] == "It is sunny."


# ------------------------------------------------------------------------------------------ embeddings


def test_titan_embeddings_one_invoke_per_input(client: Any, stub: Stubber) -> None:
    for text, vector, tokens in (("alpha", [0.1, 0.2], 1), ("beta gamma", [0.3, 0.4], 2)):
        stub.add_response(
            "invoke_model",
            invoke_answer({"embedding": vector, "inputTextTokenCount": tokens}),
            invoke_params("amazon.titan-embed-text-v2:0", {"inputText": text, "dimensions": 256}),
        )

    p = provider(client, "amazon.titan-embed-text-v2:0")
    out = send(p, "/v1/embeddings", {"input": ["alpha", "beta gamma"], "dimensions": 256})

    assert out.ok and out.attempts == 2
    assert out.body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
        ],
        "model": MODEL,
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    assert out.usage() == (3, 0, 3)


def test_embeddings_base64_encoding(client: Any, stub: Stubber) -> None:
    stub.add_response(
        "invoke_model",
        invoke_answer({"embedding": [0.5, -1.0], "inputTextTokenCount": 1}),
    )
    out = send(
        provider(client, "amazon.titan-embed-text-v2:0"), "/v1/embeddings", {"input": "a", "encoding_format": "base64"}
    )
    assert out.body is not None
    raw = base64.b64decode(out.body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)


def test_cohere_embeddings_send_all_texts_at_once(client: Any, stub: Stubber) -> None:
    stub.add_response(
        "invoke_model",
        invoke_answer({"id": "x", "embeddings": [[1.0], [2.0]], "response_type": "embeddings_floats"}),
        invoke_params("cohere.embed-english-v3", {"texts": ["a", "b"], "input_type": "search_document"}),
    )
    out = send(provider(client, "cohere.embed-english-v3"), "/v1/embeddings", {"input": ["a", "b"]})
    assert out.body is not None and [d["embedding"] for d in out.body["data"]] == [[1.0], [2.0]]
    assert out.attempts == 1


def test_token_id_embedding_input_is_a_400(client: Any, stub: Stubber) -> None:
    out = send(provider(client, "amazon.titan-embed-text-v2:0"), "/v1/embeddings", {"input": [[1, 2, 3]]})
    assert out.status_code == 400


# ---------------------------------------------------------------------------------------------- errors


def test_validation_exception_is_a_400_with_an_openai_body(client: Any, stub: Stubber) -> None:
    stub.add_client_error("converse", "ValidationException", "Malformed input request", 400)
    out = send(provider(client), "/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]})
    assert out.status_code == 400 and out.attempts == 1
    assert out.body == {
        "error": {"message": "Malformed input request", "type": "invalid_request_error", "param": None,
                  "code": "invalid_request"}
    }  # fmt: skip


@pytest.mark.parametrize(
    ("code", "http", "status", "kind"),
    [("AccessDeniedException", 403, 403, "permission_error"),
     ("ResourceNotFoundException", 404, 404, "not_found_error"),
     ("ModelTimeoutException", 408, 408, "server_error"),
     ("SomethingNewException", 418, 418, "invalid_request_error")],
)  # fmt: skip
def test_client_errors_map_to_statuses(
    client: Any, stub: Stubber, code: str, http: int, status: int, kind: str
) -> None:
    stub.add_client_error("converse", code, "nope", http)
    out = send(provider(client), "/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]})
    assert out.status_code == status and out.attempts == 1
    assert out.body is not None and out.body["error"]["type"] == kind and out.body["error"]["message"] == "nope"


def test_throttling_then_success_is_retried(client: Any, stub: Stubber) -> None:
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)
    stub.add_response("converse", converse_answer([{"text": "ok"}]))
    sleeps = Sleeps()
    out = send(
        provider(client, sleeps=sleeps), "/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]}
    )
    assert out.ok and out.attempts == 2
    assert len(sleeps.calls) == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 429), ("ServiceUnavailableException", 503), ("ModelNotReadyException", 503)],
)
def test_transient_errors_past_max_attempts_keep_their_status(
    client: Any, stub: Stubber, code: str, status: int
) -> None:
    for _ in range(3):
        stub.add_client_error("converse", code, "busy", 429)
    out = send(provider(client), "/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]})
    assert out.status_code == status and out.attempts == 3
    assert out.body is not None and out.body["error"]["message"] == "busy"


class RaisingClient:
    """A client whose converse raises what botocore raises when no answer comes."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [(ReadTimeoutError(endpoint_url="https://bedrock"), REQUEST_TIMEOUT),
     (EndpointConnectionError(endpoint_url="https://bedrock"), UPSTREAM_UNAVAILABLE)],
)  # fmt: skip
def test_no_answer_errors_are_retried_then_reported(exc: Exception, code: str) -> None:
    fake = RaisingClient(exc)
    out = send(provider(fake), "/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]})
    assert out.status_code is None and out.body is None and out.error_code == code
    assert fake.calls == 3 and out.attempts == 3


# ------------------------------------------------------------------------------------------- the client


def test_client_is_made_lazily_with_the_jobs_region_and_no_botocore_retries() -> None:
    job = JobRecord(id="job-1", tenant_id="t", model=MODEL, created_at=0,
              provider=BedrockConfig(type="bedrock", region="eu-west-1", model_id=MODEL_ID))  # fmt: skip
    p = make_provider(job, secret=str, settings=SETTINGS)
    assert isinstance(p, BedrockProvider)
    assert p._client is None
    made = p.client()
    assert made is p.client()
    assert made.meta.region_name == "eu-west-1"
    assert made.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert made.meta.config.read_timeout == SETTINGS.request_timeout
    asyncio.run(p.aclose())


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "assistant", "tool_calls": ["not-an-object"]}]},
        {"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function", "function": "weather"}]},
        {"messages": "hello"},
        {"messages": [{"role": "wizard", "content": "q"}]},
    ],
)
def test_malformed_bodies_are_400s_not_exceptions(client: Any, stub: Stubber, body: dict[str, Any]) -> None:
    out = send(provider(client), "/v1/chat/completions", body)
    assert out.status_code == 400 and out.body is not None
    assert out.body["error"]["code"] == "unsupported_request"
