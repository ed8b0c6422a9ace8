"""What every provider returns and takes: the Outcome of one request line, settings, the Provider protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from batchline import ids

# Codes of a failure with no HTTP answer, as the error file shows them (API.md, "Input and output lines").
REQUEST_TIMEOUT = "request_timeout"
UPSTREAM_UNAVAILABLE = "upstream_unavailable"

# Upstream text kept in an error body; the rest is noise that would bloat the error file.
ERROR_TEXT_LIMIT = 1000


class UnsupportedRequest(ValueError):
    """A body the backend cannot take: reported as a 400 answer without calling the backend."""


def _int(value: Any) -> int:
    # bool is an int subclass, and a body can hold anything: only real numbers count as tokens.
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _detail(usage: dict[str, Any], names: tuple[str, str], field: str) -> int:
    """`field` of the first of `names` that holds an object; a loop, not a closure: it runs per line."""
    for name in names:
        found = usage.get(name)
        if isinstance(found, dict):
            return _int(found.get(field))
    return 0


@dataclass(frozen=True)
class Outcome:
    """What one request line got: an HTTP answer (status and body) or, with no answer, an error code."""

    status_code: int | None
    body: dict[str, Any] | None
    request_id: str
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300

    def usage(self) -> tuple[int, int, int]:
        """(prompt, completion, total) tokens from the body's `usage`, whatever the endpoint's names."""
        usage = (self.body or {}).get("usage")
        if not isinstance(usage, dict):
            return 0, 0, 0
        prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        total = _int(usage.get("total_tokens")) or prompt + completion
        return prompt, completion, total

    def token_details(self) -> tuple[int, int]:
        """(cached, reasoning) tokens: of the prompt, those read from the backend's cache; of the completion,
        those spent reasoning. Chat and completions name them `*_tokens_details`, Responses `input_`/`output_`."""
        usage = (self.body or {}).get("usage")
        if not isinstance(usage, dict):
            return 0, 0
        cached = _detail(usage, ("prompt_tokens_details", "input_tokens_details"), "cached_tokens")
        reasoning = _detail(usage, ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens")
        return cached, reasoning

    @classmethod
    def answer(cls, status_code: int, body: dict[str, Any], request_id: str | None = None) -> Outcome:
        """An HTTP answer."""
        return cls(status_code, body, request_id or ids.request_id())

    @classmethod
    def failure(cls, code: str, message: str) -> Outcome:
        """No HTTP answer: a timeout, a connection failure, an expired deadline."""
        return cls(None, None, ids.request_id(), error_code=code, error_message=message)


class ProviderSettings(BaseModel):
    """Timeouts, retries and pool sizes shared by every provider."""

    model_config = ConfigDict(frozen=True)

    request_timeout: float = Field(default=60.0, gt=0, description="Seconds one attempt may take.")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to open a connection.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per line, the first included.")
    backoff_base: float = Field(default=0.5, ge=0, description="Seconds; doubled per attempt, full jitter.")
    backoff_max: float = Field(default=20.0, ge=0, description="Cap of one backoff wait, in seconds.")
    max_retry_after: float = Field(default=60.0, ge=0, description="Longest upstream Retry-After honoured.")
    # A worker keeps up to a hundred or so requests in flight; the pool must not be what queues them.
    max_connections: int = Field(default=256, ge=1, description="Connections one provider may hold open.")
    allow_private_backends: bool = Field(default=False, description="Loopback and private base URLs may be called.")


class Provider(Protocol):
    """Sends one request line's body to a model backend."""

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        """POST `body` to the endpoint `url`; no attempt or backoff wait starts after `deadline` (monotonic)."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...
