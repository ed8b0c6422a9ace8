"""The `mock` provider: deterministic answers per body, OpenAI shapes, predictable failures."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from typing import Any

import pytest

from batchline.providers import REQUEST_TIMEOUT, Outcome
from batchline.providers.mock import MockProvider, mock_fails

MODEL = "mock-model"


def send(p: MockProvider, url: str, body: dict[str, Any], deadline_in: float = 10) -> Outcome:
    return asyncio.run(p.send(url, body, deadline=time.monotonic() + deadline_in))


def chat(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def lines(n: int) -> list[dict[str, Any]]:
    return [chat(f"request number {i}") for i in range(n)]


# ---------------------------------------------------------------------------------------- determinism


def test_same_body_same_answer_other_body_other_answer() -> None:
    p = MockProvider(MODEL)
    a, b = send(p, "/v1/chat/completions", chat("hello")), send(p, "/v1/chat/completions", chat("hello"))
    c = send(p, "/v1/chat/completions", chat("hello!"))
    assert a.body is not None and b.body is not None and c.body is not None
    assert (
        a.body["id"] == b.body["id"] and a.body["choices"] == b.body["choices"] and a.body["usage"] == b.body["usage"]
    )
    assert a.body["choices"] != c.body["choices"]


def test_model_is_the_jobs_and_does_not_change_the_answer() -> None:
    p = MockProvider(MODEL)
    plain = send(p, "/v1/completions", {"prompt": "x y"})
    with_model = send(p, "/v1/completions", {"prompt": "x y", "model": "something-else"})
    assert plain.body is not None and with_model.body is not None
    assert with_model.body["model"] == MODEL
    assert plain.body["choices"] == with_model.body["choices"]


# --------------------------------------------------------------------------------------------- shapes


def test_chat_shape_and_usage() -> None:
    out = send(MockProvider(MODEL), "/v1/chat/completions", chat("one two three four"))
    assert out.ok and out.status_code == 200 and out.request_id.startswith("req_")
    body = out.body
    assert body is not None
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-mock")
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    text = choice["message"]["content"]
    assert choice["message"]["role"] == "assistant" and text.endswith(".")
    words = len(text.split())
    assert 5 <= words <= 24
    assert body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": words,
        "total_tokens": 4 + words,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert out.usage() == (4, words, 4 + words)


def test_completions_shape() -> None:
    out = send(MockProvider(MODEL), "/v1/completions", {"prompt": ["a b", "c"]})
    assert out.body is not None
    assert out.body["object"] == "text_completion"
    assert isinstance(out.body["choices"][0]["text"], str) and out.body["choices"][0]["text"]
    assert out.body["usage"]["prompt_tokens"] == 3


def test_responses_shape() -> None:
    out = send(MockProvider(MODEL), "/v1/responses", {"instructions": "be kind", "input": "hello world"})
    assert out.body is not None
    assert out.body["object"] == "response" and out.body["status"] == "completed"
    [message] = out.body["output"]
    assert message["type"] == "message" and message["content"][0]["type"] == "output_text"
    prompt, completion, total = out.usage()
    assert prompt == 4 and completion == len(message["content"][0]["text"].split()) and total == prompt + completion
    assert set(out.body["usage"]) == {
        "input_tokens",
        "input_tokens_details",
        "output_tokens",
        "output_tokens_details",
        "total_tokens",
    }


def test_embeddings_shape() -> None:
    out = send(MockProvider(MODEL), "/v1/embeddings", {"input": ["same text", "other", "same text"], "dimensions": 12})
    assert out.body is not None
    assert out.body["object"] == "list" and out.body["model"] == MODEL
    data = out.body["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and all(d["object"] == "embedding" for d in data)
    assert all(len(d["embedding"]) == 12 for d in data)
    assert math.isclose(math.sqrt(sum(x * x for x in data[0]["embedding"])), 1.0, abs_tol=1e-5)
    assert data[0]["embedding"] == data[2]["embedding"] != data[1]["embedding"]
    assert out.usage() == (5, 0, 5)  # words: 2 + 1 + 2


def test_embeddings_base64() -> None:
    p = MockProvider(MODEL)
    floats = send(p, "/v1/embeddings", {"input": "a"}).body
    packed = send(p, "/v1/embeddings", {"input": "a", "encoding_format": "base64"}).body
    assert floats is not None and packed is not None
    vector = floats["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(vector)}f", base64.b64decode(packed["data"][0]["embedding"]))
    assert all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(decoded, vector, strict=True))


def test_max_tokens_cuts_the_answer() -> None:
    out = send(MockProvider(MODEL), "/v1/chat/completions", {**chat("long please"), "max_tokens": 2})
    assert out.body is not None
    assert len(out.body["choices"][0]["message"]["content"].split()) == 2
    assert out.body["choices"][0]["finish_reason"] == "length"


def test_bad_embedding_input_is_a_400() -> None:
    assert send(MockProvider(MODEL), "/v1/embeddings", {"input": 42}).status_code == 400


# ------------------------------------------------------------------------------------------- failures


def test_failure_rate_zero_never_fails() -> None:
    p = MockProvider(MODEL, failure_rate=0.0)
    assert all(send(p, "/v1/chat/completions", body).ok for body in lines(200))


def test_failure_rate_one_always_fails_with_a_500() -> None:
    p = MockProvider(MODEL, failure_rate=1.0)
    outcomes = [send(p, "/v1/chat/completions", body) for body in lines(50)]
    assert all(o.status_code == 500 for o in outcomes)
    body = outcomes[0].body
    assert body is not None and body["error"]["type"] == "server_error" and body["error"]["code"] == "mock_failure"
    assert outcomes[0].usage() == (0, 0, 0)


def test_a_fraction_fails_the_same_predictable_lines_every_run() -> None:
    bodies = lines(300)
    runs = []
    for _ in range(2):
        p = MockProvider(MODEL, failure_rate=0.3)  # a new provider: nothing carried between runs
        runs.append([i for i, body in enumerate(bodies) if not send(p, "/v1/chat/completions", body).ok])
    predicted = [i for i, body in enumerate(bodies) if mock_fails("/v1/chat/completions", body, 0.3)]
    assert runs[0] == runs[1] == predicted
    assert 60 <= len(predicted) <= 120  # about 30 % of 300
    # The verdict depends on the body, not its position or the model the worker sets.
    assert mock_fails("/v1/chat/completions", {**bodies[predicted[0]], "model": "x"}, 0.3)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_failing_sets_grow_with_the_rate(rate: float) -> None:
    bodies = lines(100)
    lower = {i for i, b in enumerate(bodies) if mock_fails("/v1/embeddings", b, rate / 2)}
    higher = {i for i, b in enumerate(bodies) if mock_fails("/v1/embeddings", b, rate)}
    assert lower <= higher and lower != higher


# ------------------------------------------------------------------------------------ latency, deadline


def test_latency_is_slept() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    assert send(MockProvider(MODEL, latency_ms=250, sleep=sleep), "/v1/chat/completions", chat("x")).ok
    assert slept == [0.25]


def test_deadline_passed_is_request_timeout() -> None:
    out = send(MockProvider(MODEL), "/v1/chat/completions", chat("x"), deadline_in=-1)
    assert out.status_code is None and out.error_code == REQUEST_TIMEOUT


def test_unknown_endpoint_is_a_404() -> None:
    assert send(MockProvider(MODEL), "/v1/images", {}).status_code == 404
