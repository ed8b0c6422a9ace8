"""moto's DynamoDB and S3 behave as AWS does under concurrency and in the order of their events."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import moto_fixes
from localcloud.patching import installed


@pytest.fixture
def fixed() -> Iterator[None]:
    with installed(moto_fixes), mock_aws():
        yield


def _table() -> Any:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def test_a_write_during_a_failing_transaction_is_neither_lost_nor_a_500(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto copies the table to roll a failed transaction back; a write landing meanwhile must survive.

    The other write is started right after moto's copy; the transaction goes on only once that write
    has finished (without the fix) or waits on the service's lock (with it), so both orders are driven,
    not hoped for.
    """
    import moto.dynamodb.models as models

    dynamodb = _table()
    writer = boto3.client("dynamodb", region_name="us-east-1")
    real_deepcopy = copy.deepcopy
    finished = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.put_item(TableName="t", Item={"pk": {"S": "concurrent"}})
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            finished.set()

    def deepcopy_then_interleave(value: Any, memo: Any = None) -> Any:
        copied = real_deepcopy(value, memo)
        if not finished.is_set():
            threading.Thread(target=write).start()
            while not finished.is_set() and not moto_fixes.DYNAMODB_LOCK.wait_for_waiter(timeout=0.01):
                pass
        return copied

    # Only moto's DynamoDB models see the interleaving copy.
    monkeypatch.setattr(models, "copy", SimpleNamespace(deepcopy=deepcopy_then_interleave))
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "tx"}}, "ConditionExpression": "attribute_exists(pk)"}}
            ]
        )
    finished.wait(timeout=30)
    monkeypatch.undo()
    assert errors == []
    assert "Item" in dynamodb.get_item(TableName="t", Key={"pk": {"S": "concurrent"}})


def test_an_s3_notification_follows_the_stored_object_and_its_metadata(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function an inbox notification starts reads the object's metadata: it must be there."""
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    s3.create_bucket(Bucket="inbox-bucket")
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="inbox-bucket",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    seen: list[dict[str, str]] = []
    from moto.s3 import notifications

    real_event = notifications._get_s3_event

    def look_when_notified(event_name: Any, bucket: Any, key: Any, notification_id: str) -> Any:
        # What a subscriber reading the object back would get at the moment its event is made.
        seen.append(dict(key.metadata))
        return real_event(event_name, bucket, key, notification_id)

    monkeypatch.setattr(notifications, "_get_s3_event", look_when_notified)
    s3.put_object(Bucket="inbox-bucket", Key="inbox/x", Body=b"{}\n", Metadata={"endpoint": "/v1/embeddings"})
    assert [metadata.get("x-amz-meta-endpoint") for metadata in seen] == ["/v1/embeddings"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    assert [unquote_plus(r["s3"]["object"]["key"]) for body in bodies for r in body.get("Records", [])] == ["inbox/x"]
