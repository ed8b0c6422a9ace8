"""Domain errors, and the one place that maps them to HTTP statuses and OpenAI's error body (and models it)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from batchline.models.common import Model

# What an error echoes of a client's value: an id, a key, a name. Words longer than this are cut.
MAX_ECHO_CHARS = 64
MAX_MESSAGE_CHARS = 1000
MAX_PARAM_CHARS = 200
_LONG_WORD = re.compile(rf"[^\s'\"]{{{MAX_ECHO_CHARS + 1},}}")


class BatchlineError(Exception):
    """A failure the client caused or should hear about; `param` names the offending field."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        # HTTP headers the answer carries (Retry-After on a 429).
        self.headers = dict(headers or {})


class InvalidRequest(BatchlineError):
    """The request fails validation."""


class NotFound(BatchlineError):
    """The object does not exist, or belongs to another tenant (never say which)."""


class Conflict(BatchlineError):
    """An illegal state change, or an Idempotency-Key reused with another body.

    The openai SDK retries a 409 (a lock timeout, to OpenAI) unless the answer says `x-should-retry: false`:
    it does, unless `retryable` (the same request may pass a moment later).
    """

    def __init__(self, message: str, *, retryable: bool = False, **details: Any) -> None:
        super().__init__(message, **details)
        if not retryable:
            self.headers.setdefault("x-should-retry", "false")


class PayloadTooLarge(BatchlineError):
    """The body is larger than the route accepts."""


class Unauthenticated(BatchlineError):
    """Missing, unknown or revoked API key."""


class Forbidden(BatchlineError):
    """A valid key that may not do this."""


class RateLimited(BatchlineError):
    """Per-tenant rate or enqueued-request limit reached."""


class EnqueuedLimitReached(RateLimited):
    """A batch would take the tenant's non-terminal batches over its enqueued-requests limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Enqueued request limit reached: limit {limit} requests in this project's batches that have not "
            "ended. Please try again once some in_progress batches have been completed.",
            code="request_limit_exceeded",
        )
        self.limit = limit


class ServerError(BatchlineError):
    """Our fault or an AWS fault; the message is safe to show."""


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
]

# The whole mapping of the contract's error table: status and OpenAI `type` per domain error.
_HTTP: dict[type[BatchlineError], tuple[int, ErrorType]] = {
    InvalidRequest: (422, "invalid_request_error"),
    NotFound: (404, "not_found_error"),
    Conflict: (409, "invalid_request_error"),
    PayloadTooLarge: (413, "invalid_request_error"),
    Unauthenticated: (401, "authentication_error"),
    Forbidden: (403, "permission_error"),
    RateLimited: (429, "rate_limit_error"),
    ServerError: (500, "server_error"),
}

# Statuses that reach us without a domain error (unknown route, wrong method) and their types.
_TYPE_BY_STATUS: dict[int, ErrorType] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class ErrorDetail(Model):
    """All four keys are always present; `param` and `code` may be null."""

    message: str
    type: ErrorType
    param: str | None = Field(description="The request field at fault, or null.")
    code: str | None = Field(description="A machine-readable reason (e.g. `file_too_large`), or null.")


class ErrorBody(Model):
    """OpenAI's error body: every non-2xx answer has it (the OpenAPI document's schema of `error_body`)."""

    error: ErrorDetail


def _bounded(text: str, limit: int) -> str:
    """`text` with every over-long word (a client's id, a metadata key) cut to a prefix and an ellipsis."""
    text = _LONG_WORD.sub(lambda m: m.group()[:MAX_ECHO_CHARS] + "…", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None, bounded: bool = True
) -> dict[str, Any]:
    """OpenAI's error body, which the SDK reads, for the API's answers and for every output line's error.

    What an answer echoes of the request is bounded here, for all; `bounded=False` keeps a text that is
    not ours to cut (an upstream's own error, relayed in a line's response).
    """
    if not bounded:
        return {"error": {"message": message, "type": type_, "param": param, "code": code}}
    bounded_param = None if param is None else _bounded(param, MAX_PARAM_CHARS)
    return {"error": {"message": _bounded(message, MAX_MESSAGE_CHARS), "type": type_, "param": bounded_param,
                      "code": code}}  # fmt: skip


def to_http(exc: BatchlineError) -> tuple[int, dict[str, Any]]:
    """Status and body for a domain error."""
    for cls in type(exc).__mro__:
        if cls in _HTTP:
            status, type_ = _HTTP[cls]
            return status, error_body(exc.message, type_, param=exc.param, code=exc.code)
    return 500, error_body("The server had an error while processing your request.", "server_error")


def status_body(status: int, message: str) -> dict[str, Any]:
    """Body for an HTTP status raised by the framework itself (404 route, 405 method, ...)."""
    if status >= 500:
        return error_body(message, "server_error")
    return error_body(message, _TYPE_BY_STATUS.get(status, "invalid_request_error"))
