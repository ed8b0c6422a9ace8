"""The ingest function: S3 inbox events (through SQS) become Files and Batches; partial batch failures."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchline import inbox
from batchline.config import IngestSettings
from batchline.observability import logger, metrics, tracer
from batchline.runs import Runs
from batchline.store import Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

processor = BatchProcessor(event_type=EventType.SQS)


@lru_cache
def get_settings() -> IngestSettings:
    return IngestSettings()  # read from the environment


@lru_cache
def get_store() -> Store:
    return Store.for_settings(get_settings())


@lru_cache
def get_runs() -> Runs:
    return Runs(get_settings().state_machine_arn)


def handle(record: SQSRecord) -> None:
    """One SQS message: an S3 event naming one or more inbox objects."""
    for obj in inbox.objects(json.loads(record.body)):
        try:
            inbox.ingest(get_store(), get_runs(), obj)
        except inbox.Rejected as exc:
            # Retrying cannot help (no such job, bad metadata): log it and let the message go.
            logger.error("Inbox object rejected", extra={"key": obj.key, "reason": str(exc)})
            metrics.add_metric(name="InboxRejected", unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name="InboxBatches", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
