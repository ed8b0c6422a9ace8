"""The `openai` provider: any OpenAI-compatible HTTP server (OpenAI, vLLM, SGLang, Ollama, LiteLLM...)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from batchline.errors import error_body
from batchline.providers.base import (
    ERROR_TEXT_LIMIT,
    REQUEST_TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    Outcome,
    ProviderSettings,
)
from batchline.providers.retry import Attempt, Retrier, is_retryable_status, parse_retry_after

USER_AGENT = "batchline/0.1"


def endpoint_url(base_url: str, url: str) -> str:
    """`base_url` joined with the endpoint path, without doubling the `/v1` a base URL usually ends with."""
    base = base_url.rstrip("/")
    if base.endswith("/v1") and url.startswith("/v1/"):
        url = url[len("/v1") :]
    return base + url


def new_client(settings: ProviderSettings) -> httpx.AsyncClient:
    """One pooled client per provider: connections are reused across all the lines a worker sends."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.request_timeout, connect=settings.connect_timeout, pool=settings.request_timeout
        ),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
        ),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def answer_body(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    """The status and body to report: non-2xx bodies always hold `error`, a non-JSON body becomes one."""
    status = response.status_code
    body = _json_object(response)
    if body is None:
        text = response.text[:ERROR_TEXT_LIMIT] or response.reason_phrase
        message = f"Upstream answered {status} with a body that is not a JSON object: {text}"
        # A 2xx that is not JSON cannot be a model answer; 502 keeps the line out of the output file.
        return (502 if status < 300 else status), error_body(message, "upstream_error", bounded=False)
    if status >= 300 and not isinstance(body.get("error"), dict):
        text = json.dumps(body)[:ERROR_TEXT_LIMIT]
        return status, error_body(f"Upstream answered {status}: {text}", "upstream_error", bounded=False)
    return status, body


class OpenAICompatProvider:
    """POSTs a line's body to `<base_url>/<endpoint>` with the job's model, retrying transient failures."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        settings: ProviderSettings | None = None,
        http_client: httpx.AsyncClient | None = None,
        retrier: Retrier | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.settings = settings or ProviderSettings()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = http_client is None
        self._client = http_client or new_client(self.settings)
        self._retrier = retrier or Retrier(self.settings)

    def __repr__(self) -> str:  # the key must never reach a log line
        return f"OpenAICompatProvider(base_url={self.base_url!r}, model={self.model!r})"

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        """POST the body, with `model` set to the job's, until a final answer or the deadline."""
        target = endpoint_url(self.base_url, url)
        payload = {**body, "model": self.model}

        async def attempt() -> Attempt:
            return await self._attempt(target, payload)

        return await self._retrier.run(attempt, deadline=deadline)

    async def _attempt(self, target: str, payload: dict[str, Any]) -> Attempt:
        try:
            response = await self._client.post(target, json=payload, headers=self._headers)
        except httpx.TimeoutException as exc:
            return Attempt(Outcome.failure(REQUEST_TIMEOUT, _describe(exc, "timed out")), retryable=True)
        except httpx.UnsupportedProtocol as exc:
            # A misconfigured base URL: another attempt cannot succeed.
            return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, _describe(exc, "unsupported URL")))
        except httpx.TransportError as exc:
            return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, _describe(exc, "connection failed")), retryable=True)
        except httpx.InvalidURL as exc:
            return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, _describe(exc, "invalid URL")))
        status, body = answer_body(response)
        outcome = Outcome.answer(status, body, response.headers.get("x-request-id"))
        if not is_retryable_status(response.status_code):
            return Attempt(outcome)
        return Attempt(outcome, retryable=True, retry_after=parse_retry_after(response.headers))

    async def aclose(self) -> None:
        """Close the pooled client if this provider made it."""
        if self._owns_client:
            await self._client.aclose()


def _describe(exc: Exception, what: str) -> str:
    detail = str(exc)
    return f"Upstream {what}: {type(exc).__name__}" + (f": {detail}" if detail else "")
