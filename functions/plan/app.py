"""The plan function (Step Functions task): validate the batch's input and write its chunk manifest."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchline.config import PlanSettings
from batchline.models import PlanInput, PlanOutput
from batchline.observability import logger, metrics, tracer
from batchline.planning import plan
from batchline.store import Store


@lru_cache
def get_settings() -> PlanSettings:
    return PlanSettings()  # read from the environment


@lru_cache
def get_store() -> Store:
    return Store.for_settings(get_settings())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = PlanInput.model_validate(event)
    logger.append_keys(batch_id=request.batch_id)
    settings = get_settings()
    planned = plan(
        get_store(),
        request.batch_id,
        lines_per_chunk=settings.lines_per_chunk,
        requests_per_worker=settings.requests_per_worker,
        worker_concurrency=settings.worker_concurrency,
        enqueued_requests=settings.enqueued_requests,
    )
    answer = PlanOutput.model_validate(planned)
    metrics.add_metric(name=f"BatchesPlanned_{answer.status}", unit=MetricUnit.Count, value=1)
    return answer.model_dump(mode="json")
