"""Providers: send one request line to a model backend (an OpenAI-compatible server, Bedrock, or the mock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchline.backends import base_url_problem
from batchline.models import BedrockProvider as BedrockConfig
from batchline.models import JobRecord
from batchline.models import MockProvider as MockConfig
from batchline.models import OpenAIProvider as OpenAIConfig
from batchline.providers.base import (
    REQUEST_TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    Outcome,
    Provider,
    ProviderSettings,
    UnsupportedRequest,
)

if TYPE_CHECKING:
    # Only the openai provider sends HTTP, and imports its client itself: finalize, which takes Outcome
    # from here, never pays for it.
    import aiohttp

__all__ = [
    "REQUEST_TIMEOUT",
    "UPSTREAM_UNAVAILABLE",
    "Outcome",
    "Provider",
    "ProviderSettings",
    "UnsupportedRequest",
    "make_provider",
]


class RefusedBackend:
    """A backend the stack may not call: every line is an error line, nothing is sent."""

    def __init__(self, message: str) -> None:
        self.message = message

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        return Outcome.failure(UPSTREAM_UNAVAILABLE, self.message)

    async def aclose(self) -> None:
        pass


def make_provider(
    job: JobRecord,
    *,
    secret: Callable[[str], str],
    settings: ProviderSettings | None = None,
    bedrock_client: Any = None,
    http_client: aiohttp.ClientSession | None = None,
) -> Provider:
    """The provider for the job's `provider.type`; `secret` resolves the API key's secret name."""
    config = job.provider
    settings = settings or ProviderSettings()
    # Imported here so that a worker only loads the backend it uses (boto3 is slow to import).
    if isinstance(config, OpenAIConfig):
        from batchline.providers.openai_compat import OpenAICompatProvider

        problem = base_url_problem(config.base_url, allow_private=settings.allow_private_backends)
        if problem:
            # A job stored before create checked its URL: answer its lines, call nothing, read no secret.
            return RefusedBackend(f"The job's provider.base_url {config.base_url[:200]!r} {problem}.")

        api_key = secret(config.api_key_secret) if config.api_key_secret else None
        return OpenAICompatProvider(
            config.base_url, job.model, api_key=api_key, settings=settings, http_client=http_client
        )
    if isinstance(config, BedrockConfig):
        from batchline.providers.bedrock import BedrockProvider

        return BedrockProvider(job.model, config.model_id, config.region, settings=settings, client=bedrock_client)
    if isinstance(config, MockConfig):
        from batchline.providers.mock import MockProvider

        return MockProvider(job.model, latency_ms=config.latency_ms, failure_rate=config.failure_rate)
    raise TypeError(f"Unknown provider type: {type(config).__name__}")
