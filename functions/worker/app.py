"""The worker function (Distributed Map task): answer one chunk's lines, from a cursor, within its time."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchline.config import WorkerSettings
from batchline.models import JobRecord, WorkerInput, WorkerOutput
from batchline.observability import logger, metrics, tracer
from batchline.providers import Provider, ProviderSettings, make_provider
from batchline.secret_values import secrets_manager_getter
from batchline.store import Store
from batchline.worker import ChunkRun


@lru_cache
def get_settings() -> WorkerSettings:
    return WorkerSettings()  # read from the environment


@lru_cache
def get_store() -> Store:
    return Store.for_settings(get_settings())


def provider_for(job: JobRecord) -> Provider:
    """A provider per invocation: its HTTP client belongs to that invocation's event loop."""
    settings = get_settings()
    return make_provider(
        job,
        secret=secrets_manager_getter(),
        settings=ProviderSettings(
            request_timeout=settings.request_timeout,
            max_attempts=settings.max_attempts,
            allow_private_backends=settings.allow_private_backends,
        ),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = WorkerInput.model_validate(event)
    logger.append_keys(batch_id=request.batch_id, chunk=request.chunk.chunk, cursor=request.cursor)
    settings = get_settings()
    run = ChunkRun(
        get_store(),
        provider_for,
        requests_in_flight=settings.requests_per_worker,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_seconds=settings.request_timeout + settings.safety_margin,
        status_check_interval=settings.status_check_interval,
        checkpoint_seconds=settings.checkpoint_seconds,
        idle_wait_seconds=settings.idle_wait_seconds,
        segment_bytes=settings.segment_bytes,
        budget=settings.budget_tuning(),
    )
    answered = run.run(request.batch_id, request.chunk, request.cursor, job_id=request.job_id, offset=request.offset,
                       waits=request.waits)  # fmt: skip
    progress = WorkerOutput.model_validate(answered)
    metrics.add_metric(name="LinesAnswered", unit=MetricUnit.Count, value=progress.cursor - request.cursor)
    return progress.model_dump(mode="json")
