"""The output and error files' lines, in OpenAI's batch format."""

from __future__ import annotations

import json
from typing import Any

import orjson

from batchline import ids
from batchline.providers import Outcome

# Codes of lines that never got an HTTP answer because the batch stopped first.
CANCELLED = "batch_cancelled"
EXPIRED = "batch_expired"
FAILED = "batch_failed"

_MESSAGES = {
    CANCELLED: "The batch was cancelled before this request was sent.",
    EXPIRED: "The batch expired before this request was sent.",
    FAILED: "The batch failed before this request could be completed.",
}


def _dump(line: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON and a newline; a non-finite number (which JSON cannot hold) is null."""
    try:
        dumped = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        pass  # a lone surrogate, or an integer past 64 bits: json writes those
    else:
        # orjson answers its whole output buffer (4 KiB at least); a worker holds thousands of lines
        # and bounds them by their length, so each is kept in a copy of its own size.
        return bytes(memoryview(dumped))
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # An upstream's JSON may escape a lone surrogate, which UTF-8 cannot hold: keep it escaped, as sent.
        return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def result_line(custom_id: Any, outcome: Outcome) -> bytes:
    """One answered request: an HTTP answer keeps its status and body; no answer is an `error`."""
    if outcome.status_code is None:
        response = None
        error: dict[str, Any] | None = {"code": outcome.error_code, "message": outcome.error_message}
    else:
        response = {"status_code": outcome.status_code, "request_id": outcome.request_id, "body": outcome.body}
        error = None
    return _dump({"id": ids.batch_request_id(), "custom_id": custom_id, "response": response, "error": error})


def unsent_line(custom_id: Any, code: str, request_id: str) -> bytes:
    """A request the batch never sent (cancelled, expired, failed): an error line with no response."""
    error = {"code": code, "message": _MESSAGES[code]}
    return _dump({"id": request_id, "custom_id": custom_id, "response": None, "error": error})
