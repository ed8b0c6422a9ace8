"""What comes in: invalid files fail with the contract's codes and run nothing; the S3 inbox makes batches."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from openai import OpenAI

from localcloud import LocalCloud
from tests.e2e.runs import jsonl, request_line, run, wait

CHAT = "/v1/chat/completions"
GOOD = json.dumps(request_line("good", CHAT, "fine")).encode()


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> OpenAI:
    return OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)


def line(**fields: Any) -> bytes:
    base = request_line("x", CHAT, "hello")
    return json.dumps({**base, **fields}).encode()


def without(field: str) -> bytes:
    base = request_line("x", CHAT, "hello")
    del base[field]
    return json.dumps(base).encode()


# A file with every per-line problem, in CRLF with a BOM, blank lines and a 1 MB line that is fine.
CORPUS: list[tuple[bytes, str | None, str | None]] = [
    (b"\xef\xbb\xbf" + line(custom_id="a"), None, None),  # 1: BOM, fine
    (b"", None, None),  # 2: blank
    (b"{not json", "invalid_json_line", None),  # 3
    (b"\xff\xfe bad utf-8", "invalid_json_line", None),  # 4
    (b"[1, 2]", "invalid_json_line", None),  # 5
    (without("custom_id"), "missing_required_parameter", "custom_id"),  # 6
    (line(custom_id=""), "invalid_custom_id", "custom_id"),  # 7
    (line(custom_id="a"), "duplicate_custom_id", "custom_id"),  # 8
    (line(custom_id="m", method="GET"), "invalid_method", "method"),  # 9
    (line(custom_id="u", url="/v1/embeddings"), "url_mismatch", "url"),  # 10
    (line(custom_id="o", body={"model": "o", "messages": [{"role": "user", "content": "x"}]}), "model_mismatch", None),
    (line(custom_id="b", body={"prompt": "no messages"}), "invalid_body", None),  # 12
    (without("body"), "missing_required_parameter", "body"),  # 13
    (line(custom_id="big", body={"messages": [{"role": "user", "content": "y" * 1_000_000}]}), None, None),  # 14
]  # the model_mismatch line is 11


def test_every_validation_code_fails_the_batch_with_line_numbers_and_runs_nothing(
    cloud: LocalCloud, client: OpenAI
) -> None:
    data = b"\r\n".join(raw for raw, _, _ in CORPUS) + b"\r\n"
    result = run(client, data, endpoint=CHAT, job_id=cloud.job_id)

    assert result.batch.status == "failed"
    assert result.batch.failed_at is not None
    assert result.batch.errors is not None
    found = [(e.line, e.code) for e in result.batch.errors.data or []]
    expected = [(n, code) for n, (_, code, _) in enumerate(CORPUS, start=1) if code]
    for n, code in expected:
        assert (n, code) in found, (n, code, found)
    assert {n for n, _ in found} == {n for n, _ in expected}
    params = {(e.line, e.param) for e in result.batch.errors.data or [] if e.param}
    for n, (_, _code, param) in enumerate(CORPUS, start=1):
        if param:
            assert (n, param) in params
    _assert_ran_nothing(cloud, result.batch.id, result.batch)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\r\n\n  \n", "empty_file"),
        (b"".join(line(custom_id=f"t{i}") + b"\n" for i in range(50_001)), "too_many_tasks"),
    ],
    ids=["empty", "only blank lines", "50,001 requests"],
)
def test_whole_file_problems_fail_with_line_null(cloud: LocalCloud, client: OpenAI, data: bytes, code: str) -> None:
    result = run(client, data or b"\n", endpoint=CHAT, job_id=cloud.job_id)
    assert result.batch.status == "failed"
    assert result.batch.errors is not None
    assert [(e.code, e.line) for e in result.batch.errors.data or []][:1] == [(code, None)]
    _assert_ran_nothing(cloud, result.batch.id, result.batch)


def test_too_many_embedding_inputs(cloud: LocalCloud, client: OpenAI) -> None:
    lines = [request_line(f"e{i}", "/v1/embeddings", "x") for i in range(3)]
    lines[1]["body"]["input"] = ["word"] * 50_000
    result = run(client, jsonl(lines), endpoint="/v1/embeddings", job_id=cloud.job_id)
    assert result.batch.status == "failed"
    assert result.batch.errors is not None
    assert [e.code for e in result.batch.errors.data or []] == ["too_many_embedding_inputs"]


def _assert_ran_nothing(cloud: LocalCloud, batch_id: str, batch: Any) -> None:
    assert batch.output_file_id is None
    assert batch.error_file_id is None
    assert batch.request_counts.completed == batch.request_counts.failed == 0
    work = cloud.client("s3").list_objects_v2(Bucket=cloud.stack.physical_id("FilesBucket"), Prefix=f"work/{batch_id}/")
    assert work.get("KeyCount", 0) == 0


def test_an_inbox_put_delivered_twice_makes_one_batch_with_results_in_the_outbox(
    cloud: LocalCloud, client: OpenAI
) -> None:
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    bucket = cloud.stack.physical_id("FilesBucket")
    key = f"inbox/{cloud.job_id}/nightly run+1.jsonl"
    lines = [request_line(f"in-{i}", CHAT, f"from the inbox {i}") for i in range(60)]
    before = {batch.id for batch in client.batches.list(limit=100)}
    put = s3.put_object(Bucket=bucket, Key=key, Body=jsonl(lines))
    batch = _appear(client, before)

    # S3 events arrive at least once: deliver the very same event again.
    encoded_key = key.replace("+", "%2B").replace(" ", "+")  # S3 event keys are URL-encoded
    s3_object = {"key": encoded_key, "eTag": put["ETag"].strip('"')}
    if put.get("VersionId"):
        s3_object["versionId"] = put["VersionId"]
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": bucket}, "object": s3_object}}]}  # fmt: skip
    sqs.send_message(QueueUrl=cloud.stack.outputs["InboxQueueUrl"], MessageBody=json.dumps(event))
    done = wait(client, batch.id)

    assert done.status == "completed"
    assert done.endpoint == CHAT  # from the first line, as the object carried no `endpoint` metadata
    assert done.request_counts is not None
    assert done.request_counts.completed == 60
    assert {b.id for b in client.batches.list(limit=100)} - before == {batch.id}
    outbox = s3.get_object(Bucket=bucket, Key=f"outbox/{cloud.job_id}/nightly run+1.output.jsonl")["Body"].read()
    assert [json.loads(x)["custom_id"] for x in outbox.splitlines()] == [f"in-{i}" for i in range(60)]
    assert outbox == client.files.content(done.output_file_id).content  # type: ignore[arg-type]


def test_an_inbox_objects_metadata_sets_the_batchs_endpoint_and_metadata(cloud: LocalCloud, client: OpenAI) -> None:
    """The S3 event follows the stored metadata, so ingest reads `endpoint` and `metadata-*` from it.

    The lines are chat requests and the metadata says embeddings: honoured, the metadata wins and the
    file fails validation with url_mismatch; ignored, the batch would take the first line's url and complete.
    """
    s3 = cloud.client("s3")
    bucket = cloud.stack.physical_id("FilesBucket")
    before = {batch.id for batch in client.batches.list(limit=100)}
    lines = [request_line(f"meta-{i}", CHAT, f"metadata {i}") for i in range(3)]
    s3.put_object(Bucket=bucket, Key=f"inbox/{cloud.job_id}/with metadata.jsonl", Body=jsonl(lines),
                  Metadata={"endpoint": "/v1/embeddings", "metadata-foo": "bar", "other": "ignored"})  # fmt: skip
    done = wait(client, _appear(client, before).id)

    assert (done.endpoint, done.metadata) == ("/v1/embeddings", {"foo": "bar"})
    assert done.status == "failed"
    assert done.errors is not None
    assert "url_mismatch" in {error.code for error in done.errors.data or []}


def _appear(client: OpenAI, before: set[str]) -> Any:
    """The one batch the inbox made."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = [batch for batch in client.batches.list(limit=100) if batch.id not in before]
        if new:
            assert len(new) == 1
            return new[0]
        time.sleep(0.1)
    raise AssertionError("the inbox made no batch")
