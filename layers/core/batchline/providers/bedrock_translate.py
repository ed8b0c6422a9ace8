"""OpenAI request bodies to Bedrock Converse and InvokeModel requests, and their answers back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from batchline.providers.base import UnsupportedRequest
from batchline.providers.shapes import CHAT, COMPLETIONS, RESPONSES, Completion, ToolCall

Block = dict[str, Any]
Message = dict[str, Any]

TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})

# Converse stop reasons in OpenAI's finish_reason vocabulary; anything else ended the turn normally.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


# ------------------------------------------------------------------------------------------ requests


def text_blocks(content: Any) -> list[Block]:
    """Converse text blocks from an OpenAI `content`: a string or an array of text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        # Converse rejects blank text blocks; an empty string carries nothing anyway.
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise UnsupportedRequest("`content` must be a string or an array of content parts.")
    blocks: list[Block] = []
    for part in content:
        if isinstance(part, str):
            blocks.extend(text_blocks(part))
        elif isinstance(part, dict) and part.get("type") in TEXT_PART_TYPES:
            blocks.extend(text_blocks(part.get("text")))
        elif isinstance(part, dict) and part.get("type") == "refusal":
            blocks.extend(text_blocks(part.get("refusal")))
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise UnsupportedRequest(f"Content part type {kind!r} is not supported by the bedrock provider.")
    return blocks


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except ValueError as exc:
        raise UnsupportedRequest("Tool call `arguments` must be a JSON string.") from exc


def tool_use(call_id: Any, name: Any, arguments: Any) -> Block:
    """A Converse toolUse block from an OpenAI function call."""
    return {"toolUse": {"toolUseId": str(call_id), "name": str(name), "input": _arguments(arguments)}}


def tool_result(call_id: Any, output: Any) -> Block:
    """A Converse toolResult block from an OpenAI tool output."""
    if isinstance(output, dict):
        content: list[Block] = [{"json": output}]
    else:
        content = text_blocks(output if isinstance(output, str | list) else json.dumps(output))
    return {"toolResult": {"toolUseId": str(call_id), "content": content or [{"text": ""}]}}


def _append(messages: list[Message], role: str, blocks: list[Block]) -> None:
    # Converse wants user and assistant turns to alternate: consecutive turns of one role are merged.
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def chat_messages(messages: Any) -> tuple[list[Block], list[Message]]:
    """System blocks and Converse messages from chat `messages`."""
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest("`messages` must be a non-empty array.")
    system: list[Block] = []
    out: list[Message] = []
    for message in messages:
        if not isinstance(message, dict):
            raise UnsupportedRequest("Each message must be an object.")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(text_blocks(content))
        elif role == "user":
            _append(out, "user", text_blocks(content))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            uses = [
                tool_use(c.get("id"), c.get("function", {}).get("name"), c.get("function", {}).get("arguments"))
                for c in calls
            ]
            _append(out, "assistant", text_blocks(content) + uses)
        elif role == "tool":
            _append(out, "user", [tool_result(message.get("tool_call_id"), content)])
        else:
            raise UnsupportedRequest(f"Message role {role!r} is not supported by the bedrock provider.")
    return system, out


def prompt_messages(prompt: Any) -> list[Message]:
    """One user message from a completions `prompt` (a string or an array of strings)."""
    parts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise UnsupportedRequest("`prompt` must be a string or an array of strings.")
    blocks = [{"text": p} for p in parts if p]
    if not blocks:
        raise UnsupportedRequest("`prompt` is empty.")
    return [{"role": "user", "content": blocks}]


def responses_messages(body: dict[str, Any]) -> tuple[list[Block], list[Message]]:
    """System blocks (from `instructions` and system items) and Converse messages from responses `input`."""
    system = text_blocks(body.get("instructions"))
    value = body.get("input")
    if isinstance(value, str):
        return system, prompt_messages(value)
    if not isinstance(value, list) or not value:
        raise UnsupportedRequest("`input` must be a string or a non-empty array of items.")
    out: list[Message] = []
    for item in value:
        if not isinstance(item, dict):
            raise UnsupportedRequest("Each `input` item must be an object.")
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("system", "developer"):
            system.extend(text_blocks(item.get("content")))
        elif kind == "message" and item.get("role") in ("user", "assistant"):
            _append(out, item["role"], text_blocks(item.get("content")))
        elif kind == "function_call":
            _append(out, "assistant", [tool_use(item.get("call_id"), item.get("name"), item.get("arguments"))])
        elif kind == "function_call_output":
            _append(out, "user", [tool_result(item.get("call_id"), item.get("output"))])
        elif kind == "reasoning":
            continue  # the model's own earlier reasoning: nothing Converse can take back
        else:
            raise UnsupportedRequest(f"Input item {kind!r} is not supported by the bedrock provider.")
    return system, out


def inference_config(body: dict[str, Any]) -> dict[str, Any]:
    """Converse `inferenceConfig` from OpenAI sampling parameters; absent ones stay absent."""
    config: dict[str, Any] = {}
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        if body.get(name) is not None:
            config["maxTokens"] = body[name]
            break
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def _tool_spec(tool: Any) -> Block:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise UnsupportedRequest(f"Tool type {kind!r} is not supported by the bedrock provider.")
    fn = tool.get("function", tool)  # chat nests the function; responses flattens it
    spec: dict[str, Any] = {
        "name": fn.get("name"),
        "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
    }
    if fn.get("description"):
        spec["description"] = fn["description"]
    return {"toolSpec": spec}


def tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    """Converse `toolConfig` from OpenAI `tools` and `tool_choice`, or None without tools."""
    tools = body.get("tools")
    if not tools:
        return None
    config: dict[str, Any] = {"tools": [_tool_spec(t) for t in tools]}
    choice = body.get("tool_choice")
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = choice.get("function", choice).get("name")
        config["toolChoice"] = {"tool": {"name": name}}
    # "none" has no Converse equivalent; the tools stay because earlier toolUse blocks need them.
    return config


def converse_request(url: str, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Converse keyword arguments for a chat, completions or responses body."""
    if url == CHAT:
        system, messages = chat_messages(body.get("messages"))
    elif url == COMPLETIONS:
        system, messages = [], prompt_messages(body.get("prompt"))
    elif url == RESPONSES:
        system, messages = responses_messages(body)
    else:
        raise UnsupportedRequest(f"Endpoint {url!r} is not supported by Converse.")
    request: dict[str, Any] = {"modelId": model_id, "messages": messages}
    if system:
        request["system"] = system
    config = inference_config(body)
    if config:
        request["inferenceConfig"] = config
    tools = tool_config(body)
    if tools:
        request["toolConfig"] = tools
    return request


# ------------------------------------------------------------------------------------------- answers


def completion_from_converse(response: dict[str, Any]) -> Completion:
    """The neutral completion in a Converse answer: text, tool calls, finish reason, tokens."""
    content: Iterable[Block] = response.get("output", {}).get("message", {}).get("content", [])
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(ToolCall(use["toolUseId"], use["name"], json.dumps(use.get("input", {}))))
    usage = response.get("usage", {})
    # Bedrock counts prompt-cache reads and writes apart from inputTokens; OpenAI's prompt_tokens holds
    # them all, with the reads again as cached_tokens (totalTokens already counts them).
    cache_read = int(usage.get("cacheReadInputTokens", 0))
    cache_write = int(usage.get("cacheWriteInputTokens", 0))
    return Completion(
        text="".join(texts),
        finish_reason=FINISH_REASONS.get(response.get("stopReason", ""), "stop"),
        prompt_tokens=int(usage.get("inputTokens", 0)) + cache_read + cache_write,
        completion_tokens=int(usage.get("outputTokens", 0)),
        tool_calls=tuple(calls),
        total_tokens=int(usage["totalTokens"]) if "totalTokens" in usage else None,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


# ---------------------------------------------------------------------------------------- embeddings

COHERE_BATCH = 96  # Cohere Embed on Bedrock takes at most 96 texts per call


def is_cohere(model_id: str) -> bool:
    """Cohere Embed models take a list of texts; Titan takes one text per call."""
    return model_id.startswith("cohere.") or ".cohere." in model_id


def titan_body(text: str, body: dict[str, Any]) -> dict[str, Any]:
    """A Titan Text Embeddings v2 request body."""
    request: dict[str, Any] = {"inputText": text}
    if body.get("dimensions"):
        request["dimensions"] = body["dimensions"]
    return request


def cohere_body(texts: list[str], body: dict[str, Any]) -> dict[str, Any]:
    """A Cohere Embed request body; documents unless the line says otherwise."""
    request: dict[str, Any] = {"texts": texts, "input_type": body.get("input_type", "search_document")}
    if body.get("dimensions"):
        request["output_dimension"] = body["dimensions"]
    return request


def titan_vector(payload: dict[str, Any]) -> tuple[list[float], int]:
    """The vector and input token count in a Titan answer."""
    return list(payload["embedding"]), int(payload.get("inputTextTokenCount", 0))


def cohere_vectors(payload: dict[str, Any]) -> list[list[float]]:
    """The float vectors in a Cohere answer (a plain list, or by type when embedding_types was used)."""
    embeddings = payload["embeddings"]
    if isinstance(embeddings, dict):
        embeddings = embeddings["float"]
    return [list(v) for v in embeddings]
