"""The finalize function (last Step Functions task): output and error files, usage, cost, status, event."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchline.config import FinalizeSettings
from batchline.finalizing import encode_detail, finalize
from batchline.models import FinalizeInput, FinalizeOutput
from batchline.observability import logger, metrics, tracer
from batchline.store import Store


@lru_cache
def get_settings() -> FinalizeSettings:
    return FinalizeSettings()  # read from the environment


@lru_cache
def get_store() -> Store:
    return Store.for_settings(get_settings())


@lru_cache
def get_events() -> Any:
    return boto3.client("events")


def publish(detail_type: str, detail: dict[str, Any]) -> None:
    """One EventBridge event per ended batch: `Batch Completed`, `Batch Failed`, ..."""
    settings = get_settings()
    answer = get_events().put_events(
        Entries=[
            {
                "Source": settings.event_source,
                "DetailType": detail_type,
                "Detail": encode_detail(detail),
                "EventBusName": settings.event_bus_name,
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused the event: {answer['Entries']}")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FinalizeInput.model_validate(event)
    logger.append_keys(batch_id=request.batch_id)
    answer = FinalizeOutput.model_validate(finalize(get_store(), publish, request.batch_id, request.fault))
    metrics.add_metric(name=f"Batches_{answer.status}", unit=MetricUnit.Count, value=1)
    return answer.model_dump(mode="json")
