"""The `mock` provider: deterministic fake answers for demos and tests, never a real model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Iterator
from typing import Any

from batchline.errors import error_body
from batchline.providers.base import REQUEST_TIMEOUT, Outcome
from batchline.providers.retry import Clock, Sleep
from batchline.providers.shapes import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MODERATION_CATEGORIES,
    MODERATIONS,
    RESPONSES,
    Completion,
    embedding_inputs,
    embedding_list,
    moderation_inputs,
    moderation_list,
    render,
)

MOCK_EMBEDDING_DIMENSIONS = 8
VOCABULARY = (
    "mock", "answer", "batch", "line", "token", "model", "quick", "brown", "fox", "jumps", "over", "lazy",
    "dog", "river", "stone", "cloud", "light", "paper", "signal", "number", "garden", "window", "orange",
    "silver", "market", "engine", "bridge", "forest", "ocean", "pixel", "rocket", "harbor", "violet",
    "copper", "meadow", "thunder", "lantern", "canyon", "velvet", "marble", "falcon",
)  # fmt: skip


def _canonical(url: str, body: dict[str, Any]) -> bytes:
    # `model` is left out: the worker sets it to the job's, and predictions are made from the input file.
    content = {k: v for k, v in body.items() if k != "model"}
    return json.dumps([url, content], sort_keys=True, separators=(",", ":"), default=str).encode()


def mock_digest(url: str, body: dict[str, Any]) -> str:
    """The hash every mock answer to this request is derived from."""
    return hashlib.sha256(_canonical(url, body)).hexdigest()


def mock_fails(url: str, body: dict[str, Any], failure_rate: float) -> bool:
    """Whether the mock fails this request at this rate; the same body always gets the same verdict."""
    draw = int.from_bytes(hashlib.sha256(b"failure\0" + _canonical(url, body)).digest()[:8]) / 2**64
    return draw < failure_rate


def _stream(seed: str) -> Iterator[int]:
    """Endless deterministic bytes from a seed."""
    counter = 0
    while True:
        yield from hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1


def count_words(value: Any) -> int:
    """Words in every string of a JSON value: the mock's stand-in for tokens."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        return sum(count_words(v) for k, v in value.items() if k not in ("type", "role"))
    return 0


def _prompt_tokens(url: str, body: dict[str, Any]) -> int:
    fields = {CHAT: ("messages",), COMPLETIONS: ("prompt",), RESPONSES: ("instructions", "input")}[url]
    return max(sum(count_words(body.get(f)) for f in fields), 1)


def mock_completion(url: str, body: dict[str, Any]) -> Completion:
    """The mock's answer to a chat, completions or responses body: 5 to 24 words, cut at max tokens."""
    digest = mock_digest(url, body)
    stream = _stream(digest)
    length = 5 + next(stream) % 20
    words = [VOCABULARY[next(stream) % len(VOCABULARY)] for _ in range(length)]
    limit = next((body[k] for k in ("max_tokens", "max_completion_tokens", "max_output_tokens") if k in body), None)
    finish = "stop"
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    return Completion(
        text=" ".join(words).capitalize() + ".",
        finish_reason=finish,
        prompt_tokens=_prompt_tokens(url, body),
        completion_tokens=len(words),
    )


def mock_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the text alone, so equal inputs embed equally."""
    stream = _stream(f"embedding:{text}")
    raw = [(int.from_bytes(bytes(next(stream) for _ in range(4))) / 2**31) - 1 for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def mock_answer(url: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The mock's OpenAI body for `url`."""
    if url == EMBEDDINGS:
        texts = embedding_inputs(body)
        dims = body.get("dimensions") or MOCK_EMBEDDING_DIMENSIONS
        vectors = [mock_vector(t, int(dims)) for t in texts]
        tokens = sum(max(count_words(t), 1) for t in texts)
        return embedding_list(model, vectors, prompt_tokens=tokens, encoding_format=body.get("encoding_format"))
    if url == MODERATIONS:
        inputs = moderation_inputs(body)
        scores = [mock_moderation_scores(content) for _, content in inputs]
        return moderation_list(model, scores, [kind for kind, _ in inputs], seed=f"mock{mock_digest(url, body)}")
    return render(url, model, mock_completion(url, body), seed=f"mock{mock_digest(url, body)}", request=body)


def mock_moderation_scores(content: str) -> dict[str, float]:
    """Low scores derived from the content, and 0.9 for a category the text names (`violence`, `hate`):
    a demo can see both verdicts without a real classifier."""
    stream = _stream(hashlib.sha256(content.encode()).hexdigest())
    words = set(content.lower().split())
    return {name: 0.9 if name in words else round(next(stream) / 2550, 6) for name in MODERATION_CATEGORIES}


class MockProvider:
    """Answers at once (or after `latency_ms`), failing the fraction `failure_rate` of bodies with a 500."""

    def __init__(
        self,
        model: str,
        *,
        latency_ms: int = 0,
        failure_rate: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.model = model
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self._clock = clock
        self._sleep = sleep

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        """The deterministic answer, or the deterministic failure, for this body."""
        if self._clock() >= deadline:
            return Outcome.failure(REQUEST_TIMEOUT, "The deadline passed before the request could be sent.")
        if self.latency_ms:
            await self._sleep(self.latency_ms / 1000)
        if url not in (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MODERATIONS):
            return Outcome.answer(404, error_body(f"Unknown endpoint {url!r}.", "invalid_request_error", bounded=False))
        if mock_fails(url, body, self.failure_rate):
            message = f"Mock failure: this request is in the failing fraction (failure_rate={self.failure_rate})."
            return Outcome.answer(500, error_body(message, "server_error", code="mock_failure", bounded=False))
        try:
            answer = mock_answer(url, self.model, {**body, "model": self.model})
        except (TypeError, ValueError) as exc:
            return Outcome.answer(400, error_body(str(exc), "invalid_request_error", bounded=False))
        return Outcome.answer(200, answer)

    async def aclose(self) -> None:
        """Nothing to release."""
