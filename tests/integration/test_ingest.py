"""The ingest function over moto: S3 inbox events through SQS make one batch per object version."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest

from batchline import ids
from batchline.config import ApiSettings
from batchline.store import Store
from localcloud.lambda_runtime import LambdaContext
from tests.integration.conftest import ROOT, RecordedRuns, Tenant, load_function

EVENT = json.loads((ROOT / "events" / "ingest_sqs_s3_put.json").read_text())
LINE = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}}


@pytest.fixture
def ingest(settings: ApiSettings, monkeypatch: pytest.MonkeyPatch, runs: RecordedRuns):
    monkeypatch.setenv("TABLE_NAME", settings.table_name)
    monkeypatch.setenv("BUCKET_NAME", settings.bucket_name)
    monkeypatch.setenv("STATE_MACHINE_ARN", settings.state_machine_arn)
    module = load_function("ingest")
    for cached in (module.get_settings, module.get_store, module.get_runs):
        cached.cache_clear()
    monkeypatch.setattr(module, "get_runs", lambda: runs)
    yield module
    for cached in (module.get_settings, module.get_store):
        cached.cache_clear()


def s3_event(bucket: str, key: str, put: dict[str, Any]) -> dict[str, Any]:
    """An SQS event carrying S3's notification of this put (keys URL-encoded, as S3 sends them)."""
    event = copy.deepcopy(EVENT)
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = bucket
    obj = body["Records"][0]["s3"]["object"]
    obj.update(key=key.replace(" ", "+"), eTag=put["ETag"].strip('"'))
    obj.pop("versionId")
    event["Records"][0]["body"] = json.dumps(body)
    return event


def test_an_object_with_metadata_becomes_a_batch_once(
    ingest: Any, settings: ApiSettings, tenant: Tenant, store: Store, runs: RecordedRuns
) -> None:
    key = f"inbox/{tenant.job.id}/night one.jsonl"
    put = boto3.client("s3").put_object(
        Bucket=settings.bucket_name,
        Key=key,
        Body=(json.dumps({**LINE, "url": "/v1/chat/completions"}) + "\n").encode(),
        Metadata={"endpoint": "/v1/embeddings", "metadata-team": "search", "other": "ignored"},
    )
    event = s3_event(settings.bucket_name, key, put)
    assert ingest.lambda_handler(event, LambdaContext.called_directly("ingest")) == {"batchItemFailures": []}
    assert ingest.lambda_handler(event, LambdaContext.called_directly("ingest")) == {"batchItemFailures": []}

    batch_id = ids.derived_batch_id(settings.bucket_name, key, put["ETag"].strip('"'))
    batch = store.batches.get_unscoped(batch_id)
    assert batch.tenant_id == tenant.id
    assert batch.endpoint == "/v1/embeddings"  # metadata wins over the first line's url
    assert batch.metadata == {"team": "search"}
    assert batch.inbox_key == key
    assert store.files.get(tenant.id, batch.input_file_id).filename == "night one.jsonl"
    assert len(store.batches.page(tenant.id, after=None, limit=10)[0]) == 1
    assert runs.started == [batch_id, batch_id]  # a repeated event only makes sure the run started


def test_unknown_jobs_and_other_keys_are_rejected_without_retries(
    ingest: Any, settings: ApiSettings, tenant: Tenant, store: Store
) -> None:
    s3 = boto3.client("s3")
    for key in ("inbox/job-nope/a.jsonl", f"inbox/{tenant.job.id}/a.txt", "elsewhere/a.jsonl"):
        put = s3.put_object(Bucket=settings.bucket_name, Key=key, Body=b"{}\n")
        assert ingest.lambda_handler(
            s3_event(settings.bucket_name, key, put), LambdaContext.called_directly("ingest")
        ) == {"batchItemFailures": []}
    assert store.batches.page(tenant.id, after=None, limit=10)[0] == []


def test_s3s_test_event_is_ignored(ingest: Any) -> None:
    event = copy.deepcopy(EVENT)
    event["Records"][0]["body"] = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    assert ingest.lambda_handler(event, LambdaContext.called_directly("ingest")) == {"batchItemFailures": []}


def test_a_fault_reports_only_its_message_for_retry(ingest: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> str:
        raise RuntimeError("DynamoDB unavailable")

    monkeypatch.setattr(ingest.inbox, "ingest", broken)
    event = copy.deepcopy(EVENT)
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    event["Records"].insert(0, {**event["Records"][0], "messageId": "fine", "body": test_event})
    answer = ingest.lambda_handler(event, LambdaContext.called_directly("ingest"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": EVENT["Records"][0]["messageId"]}]}
