"""The `openai` provider: any OpenAI-compatible HTTP server (OpenAI, vLLM, SGLang, Ollama, LiteLLM...)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import orjson

from batchline.errors import error_body
from batchline.jsonl import loads
from batchline.providers.base import (
    ERROR_TEXT_LIMIT,
    REQUEST_TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    Outcome,
    ProviderSettings,
)
from batchline.providers.retry import Attempt, Retrier, is_retryable_status, parse_retry_after

USER_AGENT = "batchline/0.1"
JSON_HEADERS = {"Content-Type": "application/json"}


def endpoint_url(base_url: str, url: str) -> str:
    """`base_url` joined with the endpoint path, without doubling the `/v1` a base URL usually ends with."""
    base = base_url.rstrip("/")
    if base.endswith("/v1") and url.startswith("/v1/"):
        url = url[len("/v1") :]
    return base + url


def new_session(settings: ProviderSettings) -> aiohttp.ClientSession:
    """One pooled session per provider: connections are reused across all the lines a worker sends.

    aiohttp rather than httpx: httpcore's pool walks every queued request against every connection on
    each change, so its cost per request grows with the requests in flight (at 100 in flight it was 71%
    of the worker's time); aiohttp's pool does not, and its C parser costs a third of h11's per request.
    Must be called with the event loop running: the session belongs to that loop.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.max_connections),
        # `total` bounds the whole attempt, waiting for a pooled connection included: what the worker's
        # reserve at the end of an invocation assumes one attempt takes at most.
        timeout=aiohttp.ClientTimeout(total=settings.request_timeout, sock_connect=settings.connect_timeout),
        headers={"User-Agent": USER_AGENT},
        # Lines are independent requests: a cookie one answer sets must not ride along with the next.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def answer_body(status: int, data: bytes, reason: str | None) -> tuple[int, dict[str, Any]]:
    """The status and body to report: non-2xx bodies always hold `error`, a non-JSON body becomes one."""
    body = _json_object(data)
    if body is None:
        text = data.decode("utf-8", "replace")[:ERROR_TEXT_LIMIT] or reason or ""
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
        http_client: aiohttp.ClientSession | None = None,
        retrier: Retrier | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.settings = settings or ProviderSettings()
        self._headers = {**JSON_HEADERS, "Authorization": f"Bearer {api_key}"} if api_key else JSON_HEADERS
        self._owns_client = http_client is None
        # Made at the first send, inside the event loop it then belongs to.
        self._client = http_client
        self._retrier = retrier or Retrier(self.settings)

    def __repr__(self) -> str:  # the key must never reach a log line
        return f"OpenAICompatProvider(base_url={self.base_url!r}, model={self.model!r})"

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        """POST the body, with `model` set to the job's, until a final answer or the deadline."""
        target = endpoint_url(self.base_url, url)
        data = _dumps({**body, "model": self.model})

        async def attempt() -> Attempt:
            return await self._attempt(target, data)

        return await self._retrier.run(attempt, deadline=deadline)

    async def _attempt(self, target: str, data: bytes) -> Attempt:
        if self._client is None:
            self._client = new_session(self.settings)
        try:
            # No redirects: the base URL was checked (no metadata or private address); a Location is not.
            async with self._client.post(target, data=data, headers=self._headers, allow_redirects=False) as response:
                content = await response.read()
        except TimeoutError as exc:
            return Attempt(Outcome.failure(REQUEST_TIMEOUT, _describe(exc, "timed out")), retryable=True)
        except aiohttp.NonHttpUrlClientError as exc:
            # A misconfigured base URL: another attempt cannot succeed.
            return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, _describe(exc, "unsupported URL")))
        except aiohttp.InvalidURL as exc:
            return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, _describe(exc, "invalid URL")))
        except aiohttp.ClientError as exc:  # connection refused, reset or dropped; a malformed answer
            return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, _describe(exc, "connection failed")), retryable=True)
        status, body = answer_body(response.status, content, response.reason)
        outcome = Outcome.answer(status, body, response.headers.get("x-request-id"))
        if not is_retryable_status(response.status):
            return Attempt(outcome)
        return Attempt(outcome, retryable=True, retry_after=parse_retry_after(response.headers))

    async def aclose(self) -> None:
        """Close the pooled session if this provider made it."""
        if self._owns_client and self._client is not None:
            await self._client.close()


def _dumps(payload: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        # What orjson refuses (an integer past 64 bits, a lone surrogate): as httpx sent it before.
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _describe(exc: Exception, what: str) -> str:
    detail = str(exc)
    return f"Upstream {what}: {type(exc).__name__}" + (f": {detail}" if detail else "")
