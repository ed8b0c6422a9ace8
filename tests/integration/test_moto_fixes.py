"""moto's DynamoDB and S3 behave as AWS does under concurrency and in the order of their events."""

from __future__ import annotations

import copy
import gc
import hashlib
import http.client
import io
import json
import threading
import tracemalloc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import moto_fixes
from localcloud.dynamodb import DYNAMODB_LOCK
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
    """A failed transaction is rolled back; a write landing meanwhile must survive.

    The other write is started while the transaction reads its item; the transaction goes on only once
    that write has finished (without serialization) or waits on the service's lock (with it), so both
    orders are driven, not hoped for.
    """
    from moto.dynamodb.models.table import Table

    dynamodb = _table()
    writer = boto3.client("dynamodb", region_name="us-east-1")
    real_get_item = Table.get_item
    finished = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.put_item(TableName="t", Item={"pk": {"S": "concurrent"}})
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            finished.set()

    started = threading.Event()

    def get_item_then_interleave(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_get_item(self, *args, **kwargs)
        if not started.is_set():
            started.set()
            threading.Thread(target=write).start()
            while not finished.is_set() and not DYNAMODB_LOCK.wait_for_waiter(timeout=0.01):
                pass
        return found

    monkeypatch.setattr(Table, "get_item", get_item_then_interleave)
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


def _backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"]


def _two_tables() -> Any:
    dynamodb = _table()
    dynamodb.create_table(
        TableName="u",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(20):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": f"t{n}"}, "n": {"N": str(n)}})
        dynamodb.put_item(TableName="u", Item={"pk": {"S": "u"}, "sk": {"S": f"{n:02d}"}, "n": {"N": str(n)}})
    return dynamodb


def _items(dynamodb: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: sorted(dynamodb.scan(TableName=name)["Items"], key=json.dumps) for name in ("t", "u")}


# Every kind of write on items of two tables, existing and new; the last condition fails.
CANCELLED = [
    {"Update": {"TableName": "t", "Key": {"pk": {"S": "t1"}}, "UpdateExpression": "SET n = n + :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    {"Update": {"TableName": "t", "Key": {"pk": {"S": "new-by-update"}}, "UpdateExpression": "SET n = :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    {"Put": {"TableName": "t", "Item": {"pk": {"S": "t2"}, "replaced": {"BOOL": True}}}},
    {"Put": {"TableName": "u", "Item": {"pk": {"S": "u"}, "sk": {"S": "new"}}}},
    {"Delete": {"TableName": "u", "Key": {"pk": {"S": "u"}, "sk": {"S": "03"}}}},
    {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "t4"}}, "ConditionExpression": "n = :no",
                        "ExpressionAttributeValues": {":no": {"N": "-1"}}}},
]  # fmt: skip


def test_a_transaction_whose_last_condition_fails_leaves_every_item_of_every_table_as_it_was(fixed: None) -> None:
    dynamodb = _two_tables()
    before = _items(dynamodb)
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=CANCELLED)
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None"] * 5 + ["ConditionalCheckFailed"]
    assert _items(dynamodb) == before
    # And the same writes without the failing check all happen.
    dynamodb.transact_write_items(TransactItems=CANCELLED[:-1])
    after = _items(dynamodb)
    assert {"pk": {"S": "new-by-update"}, "n": {"N": "1"}} in after["t"]
    assert {"pk": {"S": "t1"}, "n": {"N": "2"}} in after["t"]
    assert {"pk": {"S": "t2"}, "replaced": {"BOOL": True}} in after["t"]
    assert [i["sk"]["S"] for i in after["u"]].count("03") == 0
    assert {"pk": {"S": "u"}, "sk": {"S": "new"}} in after["u"]


def test_a_transaction_copies_no_table_and_leaves_the_items_it_does_not_touch_alone(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto deep-copied every table a transaction touched, to restore it whole: O(table) per transaction."""
    from moto.dynamodb.models.table import Table

    dynamodb = _two_tables()
    backend = _backend()
    untouched = {name: {id(item) for item in backend.tables[name].all_items()} for name in ("t", "u")}
    copied: list[str] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            copied.append(value.name)
        return real_deepcopy(value, memo)

    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=CANCELLED)
    dynamodb.transact_write_items(TransactItems=[CANCELLED[0]])
    monkeypatch.undo()
    assert copied == []
    # Items no transaction wrote are the very objects they were (t1 was updated in place, and is still t1).
    assert {name: {id(item) for item in backend.tables[name].all_items()} for name in ("t", "u")} == untouched


def test_a_cancelled_transaction_streams_no_record(fixed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """On AWS a cancelled transaction wrote nothing, so its table's stream shows nothing; a committed one does."""
    from localcloud import streams

    dynamodb = _table()
    dynamodb.update_table(TableName="t", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    table = _backend().tables["t"]
    source = table.latest_stream_label
    # A mapped function, as far as the table knows: its records go to localcloud.streams.deliver.
    table.lambda_event_source_mappings = {"arn:aws:lambda:us-east-1:123456789012:function:f": SimpleNamespace(
        event_source_arn=source)}  # fmt: skip
    delivered: list[str] = []
    monkeypatch.setattr(
        streams, "deliver", lambda backend, arn, items, src: delivered.extend(i.record["eventName"] for i in items)
    )
    cancelled = [
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}},
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}}, "ConditionExpression": "attribute_exists(pk)"}},
    ]
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=cancelled)
    assert delivered == []
    dynamodb.transact_write_items(TransactItems=cancelled[:1])
    assert delivered == ["INSERT"]


@pytest.mark.parametrize("algorithm", [None, "CRC32", "SHA256"])
def test_completing_a_multipart_upload_never_holds_the_whole_object_in_memory(
    fixed: None, monkeypatch: pytest.MonkeyPatch, algorithm: str | None
) -> None:
    """moto joined the parts in memory, twice (once for the checksum), and copied that: three copies of the
    object at once, which at 50,000 lines was the local cloud's peak memory (Finalize's 75 MB output)."""
    from moto.s3.models import FakeKey
    from moto.s3.utils import compute_checksum

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="parts")
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    upload = s3.create_multipart_upload(Bucket="parts", Key="k", **extra)["UploadId"]
    parts = [bytes([n]) * (5 * 1024 * 1024) for n in (1, 2)] + [b"end"]
    answers = [
        s3.upload_part(Bucket="parts", Key="k", UploadId=upload, PartNumber=n, Body=body, **extra)
        for n, body in enumerate(parts, start=1)
    ]
    handled: list[int] = []
    real_value = FakeKey.value

    def read(self: Any) -> bytes:
        value: bytes = real_value.fget(self)  # type: ignore[attr-defined]
        handled.append(len(value))
        return value

    def write(self: Any, value: Any) -> None:
        if isinstance(value, bytes | bytearray):
            handled.append(len(value))
        real_value.fset(self, value)  # type: ignore[attr-defined]

    monkeypatch.setattr(FakeKey, "value", property(read, write))
    completed = [{"PartNumber": n, "ETag": a["ETag"]} for n, a in enumerate(answers, start=1)]
    if algorithm:
        for part, answer in zip(completed, answers, strict=True):
            part[f"Checksum{algorithm}"] = answer[f"Checksum{algorithm}"]
    s3.complete_multipart_upload(Bucket="parts", Key="k", UploadId=upload, MultipartUpload={"Parts": completed})
    monkeypatch.undo()
    assert max(handled, default=0) <= max(len(p) for p in parts)
    whole = b"".join(parts)
    assert s3.get_object(Bucket="parts", Key="k")["Body"].read() == whole
    key = _s3_key("parts", "k")
    if key.checksum_type == "FULL_OBJECT":
        # The checksum moto computes over the whole object, computed part by part.
        assert key.checksum_value == compute_checksum(whole, key.checksum_algorithm or "CRC64NVME").decode()
    else:
        joined = b"".join(compute_checksum(p, algorithm or "", encode_base64=False) for p in parts)
        assert key.checksum_value == compute_checksum(joined, algorithm or "").decode()


def _s3_key(bucket: str, key: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends["123456789012"]["aws"].buckets[bucket].keys[key]


def _item_operations() -> list[Any]:
    """Every item operation's answer, as the client parses it, over items of every attribute type."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="typed",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    typed = {"pk": {"S": "p"}, "sk": {"S": "1"}, "n": {"N": "1.5"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"q"]},
             "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["2"]}, "nul": {"NULL": True}, "yes": {"BOOL": True},
             "m": {"M": {"l": {"L": [{"N": "1"}, {"S": "x"}, {"M": {"z": {"B": b"zz"}}}]}}}}  # fmt: skip
    key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
    partition = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p"}}}
    answers = [
        dynamodb.put_item(TableName="typed", Item=typed, ReturnValues="ALL_OLD"),
        dynamodb.put_item(TableName="typed", Item={**typed, "sk": {"S": "2"}}, ReturnValues="ALL_OLD"),
        dynamodb.get_item(TableName="typed", Key=key),
        dynamodb.get_item(TableName="typed", Key={"pk": {"S": "none"}, "sk": {"S": "1"}}),
        dynamodb.query(TableName="typed", Limit=1, **partition),
        dynamodb.query(TableName="typed", ProjectionExpression="sk, m.l", **partition),
        dynamodb.scan(TableName="typed"),
        dynamodb.batch_get_item(RequestItems={"typed": {"Keys": [key, {"pk": {"S": "p"}, "sk": {"S": "9"}}]}}),
        dynamodb.update_item(TableName="typed", Key=key, UpdateExpression="ADD n :one",
                             ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW"),
        dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": "typed", "Key": key}}]),
        dynamodb.transact_write_items(TransactItems=[{"Delete": {"TableName": "typed", "Key": key}}]),
        dynamodb.delete_item(TableName="typed", Key={"pk": {"S": "p"}, "sk": {"S": "2"}}, ReturnValues="ALL_OLD"),
    ]  # fmt: skip
    try:
        dynamodb.put_item(TableName="typed", Item=typed, ConditionExpression="attribute_exists(pk)",
                          ReturnValuesOnConditionCheckFailure="ALL_OLD")  # fmt: skip
    except ClientError as exc:
        answers.append(exc.response["Error"])
    for answer in answers:
        answer.pop("ResponseMetadata", None)
    return answers


def test_item_operations_answer_as_moto_serializes_them_without_walking_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto's model-driven serializer spent ~2.5 ms per small item read: 0.7 s for a query of 300 leases."""
    with mock_aws():
        expected = _item_operations()
    from moto.core import serialize

    walked: list[str] = []
    original = serialize.BaseJSONSerializer.serialize

    def counted(self: Any, result: Any) -> Any:
        walked.append(self.operation_model.name)
        return original(self, result)

    monkeypatch.setattr(serialize.BaseJSONSerializer, "serialize", counted)
    with installed(moto_fixes), mock_aws():
        assert _item_operations() == expected
    # What is not an item operation's answer still goes the serializer's way (a transaction's is empty).
    assert walked == ["CreateTable", "TransactWriteItems"]


MIB = 1024 * 1024


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, int]]:
    """moto's own server with the fixes, keeping objects over 64 KiB in files as the local cloud does:
    an S3 client of it, and its host and port."""
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(64 * 1024))
    with installed(moto_fixes):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{host}:{port}"), host, port
        finally:
            server.stop()


def _get_traced(host: str, port: int, path: str, headers: dict[str, str]) -> tuple[bytes, int]:
    """GET `path`, the sha256 of its body, and the peak of what the process allocated meanwhile.

    Once a client closes, werkzeug drains the socket with a 10 MB read buffer (never touched, so never
    resident): the server's request threads are waited for first, and this connection stays open until
    tracing stops (http.client closes it with the body's last read, so a duplicate descriptor holds it).
    """
    _finish_requests()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.connect()
    held = connection.sock.dup()
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        assert response.status in (200, 206), response.status
        while chunk := response.read(64 * 1024):
            digest.update(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        connection.close()
        held.close()
    return digest.digest(), peak


def _finish_requests() -> None:
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):  # socketserver's thread per request
            thread.join(timeout=30)


def test_the_server_sends_an_object_or_a_range_of_it_without_reading_it_whole(served: tuple[Any, str, int]) -> None:
    # moto answered every GET with the whole object read into memory (and a range with a copy of its
    # slice besides): each ranged read of a worker, and the download of a 33 MB output, held it all.
    s3, host, port = served
    s3.create_bucket(Bucket="streamed")
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB
    s3.put_object(Bucket="streamed", Key="k", Body=data)
    cases = [({}, data), ({"Range": "bytes=1000-"}, data[1000:]), ({"Range": "bytes=5-9"}, data[5:10])]
    for headers, expected in [(headers, hashlib.sha256(part).digest()) for headers, part in cases]:
        url = urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": "streamed", "Key": "k"}))
        digest, peak = _get_traced(host, port, f"{url.path}?{url.query}", headers)
        assert digest == expected, headers
        assert peak < 4 * MIB, (headers, peak)


def test_the_server_reads_a_request_body_into_one_copy_of_it(served: tuple[Any, str, int]) -> None:
    # werkzeug read a body in 64 KiB blocks into a bytearray, then copied that into bytes: each 8 MiB part
    # a worker or Finalize put was held twice while it arrived.
    s3, host, port = served
    s3.create_bucket(Bucket="received")
    data = bytes(range(256)) * (32 * 1024)  # 8 MiB
    url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": "received", "Key": "k"}))
    _finish_requests()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    tracemalloc.start()
    try:
        # From a file: http.client joins a body given as bytes to its headers, a copy of its own.
        body = io.BytesIO(data)
        connection.request("PUT", f"{url.path}?{url.query}", body=body, headers={"Content-Length": str(len(data))})
        response = connection.getresponse()
        response.read()
        # Measured at the answer, which follows the body's read: after it, werkzeug's end of the request
        # allocates (and never touches) a 10 MB buffer to drain the socket, as _get_traced says.
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        connection.close()
    assert response.status == 200
    assert s3.get_object(Bucket="received", Key="k")["Body"].read() == data
    assert peak < 1.5 * len(data), peak


def test_a_request_body_is_freed_when_its_request_ends_not_at_a_later_collection(
    served: tuple[Any, str, int],
) -> None:
    # moto runs its Flask apps in debug mode, where Flask's check of request.files closes the request into
    # a class of its own: a reference cycle, so each body lived on until a full collection. Three 8 MiB
    # parts waiting for one were the largest Python allocation of a 50,000-line run.
    s3, _, _ = served
    s3.create_bucket(Bucket="freed")
    body = b"x" * (8 * MIB)
    gc.collect()
    gc.disable()  # nothing is freed but by reference counts: what a cycle holds stays
    try:
        tracemalloc.start()
        try:
            s3.put_object(Bucket="freed", Key="k", Body=body)
            _finish_requests()
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    finally:
        gc.enable()
    assert held < 2 * MIB, held
    assert s3.get_object(Bucket="freed", Key="k")["Body"].read() == body


def test_the_server_sends_all_of_an_object_completed_from_parts(served: tuple[Any, str, int]) -> None:
    # The parts are copied into the object's file through a buffered writer: its last bytes may still be
    # in that buffer, not yet in the file a GET reads.
    s3, host, port = served
    s3.create_bucket(Bucket="joined")
    parts = [bytes([1]) * (5 * MIB), b"tail" * 331]
    upload = s3.create_multipart_upload(Bucket="joined", Key="k")["UploadId"]
    answers = [
        s3.upload_part(Bucket="joined", Key="k", UploadId=upload, PartNumber=n, Body=body)
        for n, body in enumerate(parts, start=1)
    ]
    completed = [{"PartNumber": n, "ETag": a["ETag"]} for n, a in enumerate(answers, start=1)]
    s3.complete_multipart_upload(Bucket="joined", Key="k", UploadId=upload, MultipartUpload={"Parts": completed})
    url = urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": "joined", "Key": "k"}))
    digest, _ = _get_traced(host, port, f"{url.path}?{url.query}", {})
    assert digest == hashlib.sha256(b"".join(parts)).digest()


def test_a_large_object_is_stored_and_its_etag_computed_without_another_copy_of_it(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's SpooledTemporaryFile took the whole value into memory before moving it to its file, and its
    # ETag read the object back in 16 MiB blocks: two more copies of every part a worker or Finalize put.
    from moto.s3.models import FakeKey

    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(64 * 1024))
    value = bytes(range(256)) * (32 * 1024)  # 8 MiB
    tracemalloc.start()
    try:
        key = FakeKey("k", value, account_id="123456789012", region_name="us-east-1")
        etag = key.etag
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    try:
        assert etag == f'"{hashlib.md5(value).hexdigest()}"'  # noqa: S324  # S3's ETag is an MD5
        assert key.value == value
        assert peak < 2 * MIB, peak
    finally:
        key.dispose()


def test_completing_a_multipart_upload_reads_each_part_for_its_checksum_in_blocks(
    fixed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full-object checksum read each part whole: one more copy of an 8 MiB part at Finalize's end.
    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(64 * 1024))  # as the local cloud keeps objects
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="parts")
    upload = s3.create_multipart_upload(Bucket="parts", Key="k")["UploadId"]
    parts = [bytes([n]) * (8 * MIB) for n in (1, 2)]
    answers = [
        s3.upload_part(Bucket="parts", Key="k", UploadId=upload, PartNumber=n, Body=body)
        for n, body in enumerate(parts, start=1)
    ]
    completed = [{"PartNumber": n, "ETag": a["ETag"]} for n, a in enumerate(answers, start=1)]
    tracemalloc.start()
    try:
        s3.complete_multipart_upload(Bucket="parts", Key="k", UploadId=upload, MultipartUpload={"Parts": completed})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _s3_key("parts", "k").checksum_type == "FULL_OBJECT"
    assert peak < 4 * MIB, peak
