"""OpenAI answer bodies for each endpoint, built from one neutral completion (used by bedrock and mock)."""

from __future__ import annotations

import base64
import secrets
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchline.providers.base import UnsupportedRequest

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
MODERATIONS = "/v1/moderations"


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; `arguments` is a JSON string as OpenAI sends it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    """A model's answer, whatever the backend: text, tool calls, why it stopped (chat vocabulary), tokens."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)
    total_tokens: int | None = None
    # Of prompt_tokens, those read from and written to the backend's prompt cache; of completion_tokens,
    # those spent reasoning.
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total(self) -> int:
        """Total tokens: the backend's count if it gave one."""
        return self.total_tokens if self.total_tokens is not None else self.prompt_tokens + self.completion_tokens


def _hex(seed: str | None, length: int = 24) -> str:
    return (seed or secrets.token_hex(length // 2))[:length]


def chat_completion(model: str, c: Completion, *, seed: str | None = None) -> dict[str, Any]:
    """A `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": c.text or None, "refusal": None}
    if c.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in c.tool_calls
        ]
    return {
        "id": f"chatcmpl-{_hex(seed)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}],
        "usage": _usage(c),
    }


def _usage(c: Completion) -> dict[str, Any]:
    """Chat and completions usage, with the details the SDK's CompletionUsage declares."""
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.total,
        "prompt_tokens_details": {"cached_tokens": c.cached_tokens, "cache_write_tokens": c.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
    }


def text_completion(model: str, c: Completion, *, seed: str | None = None) -> dict[str, Any]:
    """A `text_completion` object."""
    finish = c.finish_reason if c.finish_reason in ("stop", "length", "content_filter") else "stop"
    return {
        "id": f"cmpl-{_hex(seed)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": c.text, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(c),
    }


def response_object(
    model: str, c: Completion, *, seed: str | None = None, request: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A Responses API `response` object: one output message, then any function calls.

    The tool settings are the request's, echoed as OpenAI does (the SDK's Response requires them).
    """
    request = request or {}
    incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(c.finish_reason)
    ident = _hex(seed, 32)
    output: list[dict[str, Any]] = []
    if c.text or not c.tool_calls:
        output.append(
            {
                "type": "message",
                "id": f"msg_{ident}",
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": c.text, "annotations": []}],
            }
        )
    output.extend(
        {
            "type": "function_call",
            "id": f"fc_{ident}{i}",
            "call_id": t.id,
            "name": t.name,
            "arguments": t.arguments,
            "status": "completed",
        }
        for i, t in enumerate(c.tool_calls)
    )
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "error": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "usage": {
            "input_tokens": c.prompt_tokens,
            "input_tokens_details": {"cached_tokens": c.cached_tokens, "cache_write_tokens": c.cache_write_tokens},
            "output_tokens": c.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
            "total_tokens": c.total,
        },
    }


def render(
    url: str, model: str, c: Completion, *, seed: str | None = None, request: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body `url` answers with, for the `request` it answers; embeddings have their own builder."""
    if url == COMPLETIONS:
        return text_completion(model, c, seed=seed)
    if url == RESPONSES:
        return response_object(model, c, seed=seed, request=request)
    return chat_completion(model, c, seed=seed)


def encode_embedding(vector: Sequence[float], encoding_format: str | None) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32 when asked."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return list(vector)


def embedding_list(
    model: str, vectors: Sequence[Sequence[float]], *, prompt_tokens: int, encoding_format: str | None = None
) -> dict[str, Any]:
    """An embeddings `list` object."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v, encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """The strings to embed; token-id inputs are rejected because a text backend cannot take them."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise UnsupportedRequest("`input` must be a string or a non-empty list of strings.")


# OpenAI's moderation categories, and the kinds of input each is judged on.
MODERATION_CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": ("text",),
    "harassment/threatening": ("text",),
    "hate": ("text",),
    "hate/threatening": ("text",),
    "illicit": ("text",),
    "illicit/violent": ("text",),
    "self-harm": ("text", "image"),
    "self-harm/instructions": ("text", "image"),
    "self-harm/intent": ("text", "image"),
    "sexual": ("text", "image"),
    "sexual/minors": ("text",),
    "violence": ("text", "image"),
    "violence/graphic": ("text", "image"),
}
MODERATION_THRESHOLD = 0.5


def moderation_inputs(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each input of a moderations body as (kind, content): a string, a list of them, or multimodal parts."""
    value = body.get("input")
    items = value if isinstance(value, list) else [value]
    found: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            found.append(("text", item))
        elif isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            found.append(("text", item["text"]))
        elif isinstance(item, dict) and item.get("type") == "image_url":
            found.append(("image", str((item.get("image_url") or {}).get("url", ""))))
        else:
            raise ValueError("input must be a string, an array of strings, or an array of text and image_url parts.")
    return found


def moderation_list(
    model: str, scores: Sequence[Mapping[str, float]], kinds: Sequence[str], *, seed: str
) -> dict[str, Any]:
    """A `ModerationCreateResponse`: one result per input, flagged where a score reaches the threshold."""
    results = []
    for score, kind in zip(scores, kinds, strict=True):
        categories = {name: score[name] >= MODERATION_THRESHOLD for name in MODERATION_CATEGORIES}
        results.append(
            {
                "flagged": any(categories.values()),
                "categories": categories,
                "category_scores": {name: score[name] for name in MODERATION_CATEGORIES},
                "category_applied_input_types": {
                    name: [kind] if kind in kinds_judged else [] for name, kinds_judged in MODERATION_CATEGORIES.items()
                },
            }
        )
    return {"id": f"modr-{_hex(seed, 32)}", "model": model, "results": results}
