"""The sweeper: when DynamoDB's TTL removes an expired file's record, remove the file's bytes from S3."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchline.config import CoreSettings
from batchline.observability import logger, metrics, tracer
from batchline.store import Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@lru_cache
def get_store() -> Store:
    return Store.for_settings(CoreSettings())  # read from the environment


def _is_ttl_removal(record: DynamoDBRecord) -> bool:
    identity = record.raw_event.get("userIdentity") or {}
    return (
        record.event_name is not None
        and record.event_name.name == "REMOVE"
        and (identity.get("principalId") == "dynamodb.amazonaws.com")
    )


def sweep(record: DynamoDBRecord) -> None:
    """Delete the bytes of one expired file.

    The event filter only lets TTL removals of files through; the same check here keeps an update
    or a user's delete from ever costing a file its bytes, should the filter be lost or not applied.
    """
    old = record.dynamodb.old_image if record.dynamodb else {}
    if not _is_ttl_removal(record) or old.get("sk") != "file" or not old.get("s3_key"):
        return
    get_store().objects.delete(str(old["s3_key"]))
    metrics.add_metric(name="ExpiredFilesSwept", unit=MetricUnit.Count, value=1)
    logger.info("Removed an expired file's bytes", extra={"file_id": old.get("id")})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=sweep, processor=processor, context=context)
