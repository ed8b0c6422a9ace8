"""The sweeper removes an expired file's bytes when TTL removes its record."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from batchline.config import ApiSettings
from localcloud.lambda_runtime import LambdaContext
from tests.integration.conftest import ROOT, load_function

EVENT = json.loads((ROOT / "events" / "sweeper_ttl_remove.json").read_text())
KEY = EVENT["Records"][0]["dynamodb"]["OldImage"]["s3_key"]["S"]


@pytest.fixture
def sweeper(settings: ApiSettings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TABLE_NAME", settings.table_name)
    monkeypatch.setenv("BUCKET_NAME", settings.bucket_name)
    module = load_function("sweeper")
    module.get_store.cache_clear()
    yield module
    module.get_store.cache_clear()


def test_a_ttl_removal_deletes_the_files_bytes(sweeper, settings: ApiSettings) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=settings.bucket_name, Key=KEY, Body=b"data")
    s3.put_object(Bucket=settings.bucket_name, Key="files/other", Body=b"keep")
    answer = sweeper.lambda_handler(EVENT, LambdaContext.called_directly("sweeper"))
    assert answer == {"batchItemFailures": []}
    with pytest.raises(ClientError):
        s3.head_object(Bucket=settings.bucket_name, Key=KEY)
    assert s3.get_object(Bucket=settings.bucket_name, Key="files/other")["Body"].read() == b"keep"


def _not_swept(change: dict) -> dict:
    event = copy.deepcopy(EVENT)
    event["Records"][0].update(change)
    return event


@pytest.mark.parametrize(
    "event",
    [
        _not_swept({"dynamodb": {**EVENT["Records"][0]["dynamodb"], "OldImage": {"sk": {"S": "batch"}}}}),
        _not_swept({"eventName": "MODIFY"}),
        _not_swept({"userIdentity": None}),  # a user's DeleteItem, not TTL
    ],
    ids=["not a file", "an update", "a user delete"],
)
def test_anything_but_a_ttl_removal_of_a_file_is_left_alone(sweeper, settings: ApiSettings, event: dict) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=settings.bucket_name, Key=KEY, Body=b"data")
    assert sweeper.lambda_handler(event, LambdaContext.called_directly("sweeper")) == {"batchItemFailures": []}
    assert s3.head_object(Bucket=settings.bucket_name, Key=KEY)["ContentLength"] == 4


def test_a_failing_delete_is_reported_for_retry(sweeper, monkeypatch: pytest.MonkeyPatch) -> None:
    event = copy.deepcopy(EVENT)
    second = copy.deepcopy(event["Records"][0])
    second["dynamodb"]["SequenceNumber"] = "222"
    second["dynamodb"]["OldImage"]["s3_key"] = {"S": "files/t/broken"}
    event["Records"].append(second)

    def delete_object(key: str) -> None:
        if key.endswith("broken"):
            raise RuntimeError("S3 unavailable")

    monkeypatch.setattr(sweeper.get_store().objects, "delete", delete_object)
    answer = sweeper.lambda_handler(event, LambdaContext.called_directly("sweeper"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "222"}]}


def test_the_event_filter_admits_only_ttl_removals_of_files() -> None:
    from localcloud.template import load_template

    events = load_template(Path(ROOT / "template.yaml"))["Resources"]["SweeperFunction"]["Properties"]["Events"]
    pattern = json.loads(events["ExpiredFiles"]["Properties"]["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern["eventName"] == ["REMOVE"]
    assert pattern["userIdentity"]["principalId"] == ["dynamodb.amazonaws.com"]
    assert pattern["dynamodb"]["OldImage"]["sk"] == {"S": ["file"]}
