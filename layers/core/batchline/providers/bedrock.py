"""The `bedrock` provider: Converse for chat, completions and responses; InvokeModel for embeddings."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.response import StreamingBody

from batchline.errors import error_body
from batchline.providers import bedrock_translate as tr
from batchline.providers.base import (
    REQUEST_TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    Outcome,
    ProviderSettings,
    UnsupportedRequest,
)
from batchline.providers.retry import Attempt, Retrier, is_retryable_status
from batchline.providers.shapes import EMBEDDINGS, embedding_inputs, embedding_list, render

# Bedrock error codes as (status, OpenAI type, OpenAI code, retry?); others keep Bedrock's HTTP status.
CLIENT_ERRORS: dict[str, tuple[int, str, str, bool]] = {
    "ThrottlingException": (429, "rate_limit_error", "rate_limit_exceeded", True),
    "ServiceUnavailableException": (503, "server_error", "service_unavailable", True),
    "ModelNotReadyException": (503, "server_error", "model_not_ready", True),
    "InternalServerException": (500, "server_error", "internal_error", True),
    "ValidationException": (400, "invalid_request_error", "invalid_request", False),
    "AccessDeniedException": (403, "permission_error", "access_denied", False),
    "ResourceNotFoundException": (404, "not_found_error", "model_not_found", False),
    # A model timeout is the request's own weight: another attempt would likely time out again.
    "ModelTimeoutException": (408, "server_error", "model_timeout", False),
    "ModelErrorException": (502, "server_error", "model_error", False),
    "ServiceQuotaExceededException": (429, "rate_limit_error", "quota_exceeded", False),
}

INPUT_COUNT_HEADER = "x-amzn-bedrock-input-token-count"
MAX_THREADS = 64


def _snake(code: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", code.removesuffix("Exception")).lower()


def client_error_attempt(exc: ClientError) -> Attempt:
    """A Bedrock service error as an OpenAI-shaped HTTP answer, retryable if the error is transient."""
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message") or code)
    mapped = CLIENT_ERRORS.get(code)
    if mapped is None:
        status = int(meta.get("HTTPStatusCode") or 500)
        kind = "server_error" if status >= 500 else "invalid_request_error"
        mapped = (status, kind, _snake(code), is_retryable_status(status))
    status, kind, openai_code, retryable = mapped
    outcome = Outcome.answer(status, error_body(message, kind, code=openai_code, bounded=False), meta.get("RequestId"))
    return Attempt(outcome, retryable=retryable)


def botocore_error_attempt(exc: BotoCoreError) -> Attempt:
    """A failure with no service answer: timeouts and connection errors are retried, the rest are not."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return Attempt(Outcome.failure(REQUEST_TIMEOUT, f"Bedrock timed out: {text}"), retryable=True)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, f"Bedrock unreachable: {text}"), retryable=True)
    if isinstance(exc, ParamValidationError):
        return Attempt(
            Outcome.answer(400, error_body(str(exc), "invalid_request_error", code="invalid_request", bounded=False))
        )
    # Missing credentials or region: configuration, which no retry fixes.
    return Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, f"Bedrock client error: {text}"))


def _bad_answer(exc: Exception) -> Outcome:
    message = f"Bedrock answered in an unexpected shape: {type(exc).__name__}: {exc}"
    return Outcome.answer(502, error_body(message, "upstream_error", bounded=False))


class BedrockProvider:
    """Sends OpenAI bodies to a Bedrock model, translating requests and answers both ways."""

    def __init__(
        self,
        model: str,
        model_id: str,
        region: str,
        *,
        settings: ProviderSettings | None = None,
        client: Any = None,
        retrier: Retrier | None = None,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.region = region
        self.settings = settings or ProviderSettings()
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self._retrier = retrier or Retrier(self.settings)
        # The loop's default executor has min(32, CPUs + 4) threads, about 6 on a Lambda: too few for a
        # worker that keeps dozens of requests in flight, so the provider has its own.
        self._threads = min(self.settings.max_connections, MAX_THREADS)
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="bedrock")

    def client(self) -> Any:
        """The bedrock-runtime client, made on first use (no AWS work at import or construction)."""
        with self._client_lock:
            if self._client is None:
                config = Config(
                    connect_timeout=self.settings.connect_timeout,
                    read_timeout=self.settings.request_timeout,
                    max_pool_connections=self._threads,
                    # The Retrier owns retries so that none starts past the line's deadline.
                    retries={"mode": "standard", "total_max_attempts": 1},
                )
                session = boto3.session.Session()  # sessions are not thread-safe; this one is ours
                self._client = session.client("bedrock-runtime", region_name=self.region, config=config)
            return self._client

    def _invoke(self, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = getattr(self.client(), operation)(**kwargs)
        if isinstance(response.get("body"), StreamingBody):
            response["body"] = json.loads(response["body"].read())  # read in the thread: it is I/O
        return response

    async def _call(self, operation: str, kwargs: dict[str, Any], deadline: float) -> Outcome:
        """One Bedrock operation with retries; a success's body is botocore's parsed response."""
        loop = asyncio.get_running_loop()

        async def attempt() -> Attempt:
            call = functools.partial(contextvars.copy_context().run, self._invoke, operation, kwargs)
            try:
                response = await loop.run_in_executor(self._executor, call)
            except ClientError as exc:
                return client_error_attempt(exc)
            except BotoCoreError as exc:
                return botocore_error_attempt(exc)
            request_id = response.get("ResponseMetadata", {}).get("RequestId")
            return Attempt(Outcome.answer(200, response, request_id))

        return await self._retrier.run(attempt, deadline=deadline)

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        """Translate the body, call Bedrock, translate the answer to the endpoint's OpenAI body."""
        try:
            if url == EMBEDDINGS:
                return await self._embed(body, deadline)
            request = tr.converse_request(url, self.model_id, body)
        except UnsupportedRequest as exc:
            return Outcome.answer(
                400, error_body(str(exc), "invalid_request_error", code="unsupported_request", bounded=False)
            )
        except (AttributeError, KeyError, TypeError) as exc:
            # A malformed line must become an error line, never an exception that fails the whole chunk.
            message = f"The request body could not be translated for Bedrock: {type(exc).__name__}: {exc}"
            return Outcome.answer(
                400, error_body(message, "invalid_request_error", code="unsupported_request", bounded=False)
            )
        outcome = await self._call("converse", request, deadline)
        if not outcome.ok or outcome.body is None:
            return outcome
        try:
            answer = render(url, self.model, tr.completion_from_converse(outcome.body), request=body)
        except (KeyError, TypeError, ValueError) as exc:
            return _bad_answer(exc)
        return dataclasses.replace(outcome, body=answer)

    async def _embed(self, body: dict[str, Any], deadline: float) -> Outcome:
        texts = embedding_inputs(body)
        if tr.is_cohere(self.model_id):
            batches = [texts[i : i + tr.COHERE_BATCH] for i in range(0, len(texts), tr.COHERE_BATCH)]
            payloads = [tr.cohere_body(batch, body) for batch in batches]
        else:
            payloads = [tr.titan_body(text, body) for text in texts]
        vectors: list[list[float]] = []
        tokens = 0
        attempts = 0
        outcome: Outcome | None = None
        # One call at a time: a line's inputs share its deadline, and the worker already runs lines in parallel.
        for payload in payloads:
            kwargs = {
                "modelId": self.model_id,
                "body": json.dumps(payload),
                "contentType": "application/json",
                "accept": "application/json",
            }
            outcome = await self._call("invoke_model", kwargs, deadline)
            attempts += outcome.attempts
            if not outcome.ok or outcome.body is None:
                return dataclasses.replace(outcome, attempts=attempts)
            try:
                counted = _header_tokens(outcome.body)  # Bedrock's own count, when it sends one
                if tr.is_cohere(self.model_id):
                    vectors.extend(tr.cohere_vectors(outcome.body["body"]))
                else:
                    vector, count = tr.titan_vector(outcome.body["body"])
                    vectors.append(vector)
                    counted = counted or count
                tokens += counted
            except (KeyError, TypeError, ValueError) as exc:
                return _bad_answer(exc)
        assert outcome is not None  # embedding_inputs never returns an empty list
        answer = embedding_list(self.model, vectors, prompt_tokens=tokens, encoding_format=body.get("encoding_format"))
        return dataclasses.replace(outcome, body=answer, attempts=attempts)

    async def aclose(self) -> None:
        """Stop the threads and close the client if this provider made it."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_client and self._client is not None:
            self._client.close()


def _header_tokens(response: dict[str, Any]) -> int:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return int(headers.get(INPUT_COUNT_HEADER, 0))
    except ValueError:
        return 0
