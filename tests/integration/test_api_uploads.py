"""/v1/uploads through the api function's app on moto: the official SDK's chunked upload, the rules, S3 joins."""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import openai
import pytest
import requests
from fastapi.testclient import TestClient

from batchline import uploads
from batchline.config import ApiSettings
from batchline.files import MAX_FILE_BYTES
from batchline.store import Store
from tests.integration.conftest import Tenant, all_items

KiB = 1024
MiB = 1024 * KiB

Call = tuple[str, dict[str, Any]]


def payload(size: int, seed: int = 7) -> bytes:
    """Bytes that differ everywhere, so a misplaced part cannot go unnoticed."""
    return random.Random(seed).randbytes(size)


def sdk(api: TestClient, tenant: Tenant) -> openai.OpenAI:
    # No retries: a 409 or 5xx must show, not be retried away.
    return openai.OpenAI(base_url="http://testserver/v1", api_key=tenant.key, http_client=api, max_retries=0)


def raise_limit(api: TestClient, settings: ApiSettings, max_upload_bytes: int) -> None:
    """Let single requests carry `max_upload_bytes` (the api fixture clears overrides afterwards)."""
    deps = sys.modules["routes.deps"]
    # Contents are read back inline here (TestClient cannot follow a redirect to S3).
    bigger = settings.model_copy(update={"max_upload_bytes": max_upload_bytes, "max_inline_content_bytes": 1 << 30})
    api.app.dependency_overrides[deps.get_settings] = lambda: bigger  # type: ignore[attr-defined]


@pytest.fixture
def s3_calls(store: Store) -> list[Call]:
    """Every S3 operation the store's client makes, with its parameters (bodies left out)."""
    calls: list[Call] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, {k: v for k, v in params.items() if k != "Body"}))

    store.objects.client.meta.events.register("before-parameter-build.s3", record)
    return calls


def create(api: TestClient, tenant: Tenant, size: int, **body: Any) -> dict[str, Any]:
    answer = api.post(
        "/v1/uploads",
        headers=tenant.headers,
        json={"bytes": size, "filename": "big.jsonl", "mime_type": "application/jsonl", "purpose": "batch"} | body,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def add_part(api: TestClient, tenant: Tenant, upload_id: str, data: bytes) -> Any:
    return api.post(f"/v1/uploads/{upload_id}/parts", headers=tenant.headers, files={"data": ("blob", data)})


def part_id(api: TestClient, tenant: Tenant, upload_id: str, data: bytes) -> str:
    answer = add_part(api, tenant, upload_id, data)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def complete(api: TestClient, tenant: Tenant, upload_id: str, part_ids: list[str], **body: Any) -> Any:
    return api.post(f"/v1/uploads/{upload_id}/complete", headers=tenant.headers, json={"part_ids": part_ids} | body)


def content(api: TestClient, tenant: Tenant, file_id: str) -> bytes:
    answer = api.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return answer.content


def s3_keys(settings: ApiSettings, prefix: str = "") -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=settings.bucket_name, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def files_stored(settings: ApiSettings) -> list[dict[str, Any]]:
    return [i for i in all_items(settings) if i["sk"] == "file"]


def final_etag(settings: ApiSettings, file_id: str) -> str:
    (key,) = s3_keys(settings, "files/")
    assert key.endswith(file_id)
    return str(boto3.client("s3").head_object(Bucket=settings.bucket_name, Key=key)["ETag"]).strip('"')


def ranged_bytes(calls: list[Call]) -> int:
    """How many bytes passed through the function as ranged GETs."""
    total = 0
    for name, params in calls:
        if name == "GetObject" and "Range" in params:
            start, end = params["Range"].removeprefix("bytes=").split("-")
            total += int(end) - int(start) + 1
    return total


def names(calls: list[Call]) -> list[str]:
    return [name for name, _ in calls]


# ---------------------------------------------------------------------------------------- the SDK


def test_sdk_chunked_upload_over_the_direct_limit_makes_a_byte_identical_file(
    api: TestClient, tenant: Tenant, settings: ApiSettings, tmp_path: Path
) -> None:
    data = payload(200 * KiB)
    assert len(data) > settings.max_upload_bytes
    path = tmp_path / "requests.jsonl"
    path.write_bytes(data)
    before = int(time.time())

    upload = sdk(api, tenant).uploads.upload_file_chunked(
        file=path, mime_type="application/jsonl", purpose="batch", part_size=16 * KiB
    )

    assert upload.id.startswith("upload_")
    assert upload.object == "upload"
    assert upload.status == "completed"
    assert upload.bytes == len(data)
    assert upload.filename == "requests.jsonl"
    assert upload.purpose == "batch"
    assert before <= upload.created_at <= int(time.time())
    assert upload.expires_at == upload.created_at + 3600
    assert upload.file is not None
    assert upload.file.id.startswith("file-")
    assert upload.file.bytes == len(data)
    assert upload.file.purpose == "batch"
    assert upload.file.filename == "requests.jsonl"
    assert upload.file.expires_at is not None
    assert upload.file.expires_at - upload.file.created_at == 30 * 24 * 3600
    assert content(api, tenant, upload.file.id) == data
    retrieved = api.get(f"/v1/files/{upload.file.id}", headers=tenant.headers).json()
    assert retrieved == upload.file.model_dump()
    # The 13 parts are joined and gone; what is left is the File's one object.
    assert s3_keys(settings, "uploads/") == []
    assert len(s3_keys(settings)) == 1


def test_sdk_upload_crossing_the_s3_part_minimum_is_joined_by_server_side_copies(
    api: TestClient, tenant: Tenant, settings: ApiSettings, tmp_path: Path, s3_calls: list[Call]
) -> None:
    raise_limit(api, settings, 6 * MiB)
    data = payload(12 * MiB)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)

    # 5.5 + 5.5 + 1 MiB: each part joined to the chain as it comes, S3 copying every piece of 5 MiB or more.
    upload = sdk(api, tenant).uploads.upload_file_chunked(
        file=path, mime_type="application/jsonl", purpose="batch", part_size=5 * MiB + 512 * KiB
    )

    assert upload.status == "completed" and upload.file is not None
    joined = s3_calls[:]
    assert names(joined).count("UploadPartCopy") == 3  # part 1 and part 2 for the second link, the 11 MiB chain
    assert names(joined).count("UploadPart") == 1  # the small last part, through the function
    assert ranged_bytes(joined) == 1 * MiB
    assert names(joined).count("CopyObject") == 1  # completion: the chain becomes the File
    assert content(api, tenant, upload.file.id) == data


def test_parts_completed_in_the_order_they_came_make_the_file_by_one_copy_whatever_its_size(
    api: TestClient, tenant: Tenant, settings: ApiSettings, s3_calls: list[Call]
) -> None:
    # 12 parts of the api's 4 MiB, under S3's 5 MiB part minimum: joined only at completion, all 48 MiB
    # would pass through that one invocation (200 MB would not fit API Gateway's 30 s).
    raise_limit(api, settings, 4 * MiB)  # the stack's MaxUploadBytes
    data = payload(48 * MiB, seed=5)
    upload = create(api, tenant, len(data))
    parts, read = [], []
    for start in range(0, len(data), 4 * MiB):
        s3_calls.clear()
        parts.append(part_id(api, tenant, upload["id"], data[start : start + 4 * MiB]))
        read.append(ranged_bytes(s3_calls))
    s3_calls.clear()

    answer = complete(api, tenant, upload["id"], parts)

    assert answer.status_code == 200, answer.text
    # Completion: one server-side copy, the staged objects listed and deleted; no byte read.
    assert names(s3_calls) == ["CopyObject", "ListObjectsV2", "DeleteObjects"]
    # Each part's own invocation reads it back once, to send it as the chain's last piece (S3 copies only
    # pieces of 5 MiB or more); the second also reads the first, to make a chain S3 can copy from then on.
    assert read == [0, 8 * MiB] + [4 * MiB] * (len(parts) - 2)
    assert content(api, tenant, answer.json()["file"]["id"]) == data
    assert s3_keys(settings, "uploads/") == []


def test_parts_completed_in_another_order_than_they_came_are_joined_at_completion(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    data = payload(3 * 64 * KiB, seed=3)
    upload = create(api, tenant, len(data))
    pieces = [data[i : i + 64 * KiB] for i in range(0, len(data), 64 * KiB)]
    ids = {piece: part_id(api, tenant, upload["id"], piece) for piece in (pieces[1], pieces[0], pieces[2])}

    answer = complete(api, tenant, upload["id"], [ids[p] for p in pieces])

    assert answer.status_code == 200, answer.text
    assert content(api, tenant, answer.json()["file"]["id"]) == data


# ----------------------------------------------------------------------------------------- joining


def test_parts_added_out_of_order_are_joined_in_part_ids_order(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    pieces = [b"first line\n", b"second line\n", b"third line\n"]
    upload = create(api, tenant, sum(map(len, pieces)))
    ids = {piece: part_id(api, tenant, upload["id"], piece) for piece in reversed(pieces)}

    answer = complete(api, tenant, upload["id"], [ids[p] for p in pieces])

    assert answer.status_code == 200, answer.text
    file_id = answer.json()["file"]["id"]
    assert content(api, tenant, file_id) == b"".join(pieces)
    # Small parts fit one piece: a plain put, no multipart upload.
    assert "-" not in final_etag(settings, file_id)


def test_mixed_part_sizes_join_with_ranged_copies_and_at_most_a_piece_in_memory(
    api: TestClient, tenant: Tenant, settings: ApiSettings, s3_calls: list[Call]
) -> None:
    raise_limit(api, settings, 10 * MiB)
    data = payload(12 * MiB, seed=11)
    small, large, tail = data[: 1 * MiB], data[1 * MiB : 11 * MiB], data[11 * MiB :]
    upload = create(api, tenant, len(data))
    ids = {piece: part_id(api, tenant, upload["id"], piece) for piece in (tail, large, small)}
    s3_calls.clear()

    answer = complete(api, tenant, upload["id"], [ids[small], ids[large], ids[tail]])

    assert answer.status_code == 200, answer.text
    # 1 MiB buffered, topped up to 5 MiB from the large part and sent; S3 copies the large part's
    # other 6 MiB; the 1 MiB tail goes last.
    copies = [params for name, params in s3_calls if name == "UploadPartCopy"]
    assert [c["CopySourceRange"] for c in copies] == [f"bytes={4 * MiB}-{10 * MiB - 1}"]
    assert names(s3_calls).count("UploadPart") == 2
    assert ranged_bytes(s3_calls) == 6 * MiB
    assert "CompleteMultipartUpload" in names(s3_calls)
    file_id = answer.json()["file"]["id"]
    assert final_etag(settings, file_id).endswith("-3")
    assert content(api, tenant, file_id) == data


def test_wrong_total_bytes_is_422_and_creates_nothing_until_the_parts_add_up(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    upload = create(api, tenant, 100)
    first = part_id(api, tenant, upload["id"], b"a" * 60)

    short = complete(api, tenant, upload["id"], [first])

    assert short.status_code == 422
    error = short.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "part_ids"
    assert "60" in error["message"] and "100" in error["message"]
    assert files_stored(settings) == []
    assert s3_keys(settings, "files/") == []
    # Still pending with its part: the missing bytes can follow.
    second = part_id(api, tenant, upload["id"], b"b" * 40)
    done = complete(api, tenant, upload["id"], [first, second])
    assert done.status_code == 200, done.text
    assert content(api, tenant, done.json()["file"]["id"]) == b"a" * 60 + b"b" * 40


@pytest.mark.parametrize("bad", ["part_doesnotexist", "../object", "", "other-upload"])
def test_unknown_or_foreign_part_ids_are_422(api: TestClient, tenant: Tenant, settings: ApiSettings, bad: str) -> None:
    upload = create(api, tenant, 10)
    mine = part_id(api, tenant, upload["id"], b"0123456789")
    if bad == "other-upload":
        bad = part_id(api, tenant, create(api, tenant, 10)["id"], b"0123456789")

    answer = complete(api, tenant, upload["id"], [bad])

    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "part_ids"
    assert files_stored(settings) == []
    assert complete(api, tenant, upload["id"], [mine]).status_code == 200


def test_a_part_listed_twice_is_422(api: TestClient, tenant: Tenant) -> None:
    upload = create(api, tenant, 10)
    part = part_id(api, tenant, upload["id"], b"01234")
    answer = complete(api, tenant, upload["id"], [part, part])
    assert answer.status_code == 422
    assert "twice" in answer.json()["error"]["message"]


def test_an_uploads_filename_is_held_to_the_files_limit(api: TestClient, tenant: Tenant) -> None:
    answer = api.post(
        "/v1/uploads",
        headers=tenant.headers,
        json={"bytes": 10, "filename": "x" * 513, "mime_type": "application/jsonl", "purpose": "batch"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "filename"
    assert create(api, tenant, 10, filename="x" * 512)["filename"] == "x" * 512


def test_a_part_whose_filename_the_parser_cannot_read_names_its_field_and_the_limit(
    api: TestClient, tenant: Tenant
) -> None:
    upload = create(api, tenant, 10)
    answer = api.post(
        f"/v1/uploads/{upload['id']}/parts", headers=tenant.headers, files={"data": ("x" * 5000, b"0123456789")}
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "data")
    assert "filename" in error["message"] and "512 characters" in error["message"]


def test_md5_is_checked_when_given(api: TestClient, tenant: Tenant, settings: ApiSettings) -> None:
    data = payload(3000)
    upload = create(api, tenant, len(data))
    parts = [part_id(api, tenant, upload["id"], data[:1000]), part_id(api, tenant, upload["id"], data[1000:])]

    wrong = complete(api, tenant, upload["id"], parts, md5=hashlib.md5(b"other", usedforsecurity=False).hexdigest())
    assert wrong.status_code == 422
    assert wrong.json()["error"]["param"] == "md5"
    assert files_stored(settings) == []

    right = complete(api, tenant, upload["id"], parts, md5=hashlib.md5(data, usedforsecurity=False).hexdigest().upper())
    assert right.status_code == 200, right.text
    assert content(api, tenant, right.json()["file"]["id"]) == data


def test_file_takes_the_requested_purpose_and_expiry(api: TestClient, tenant: Tenant) -> None:
    kept = create(api, tenant, 3, purpose="user_data", filename="dir/notes.txt")
    assert kept["filename"] == "notes.txt"
    file = complete(api, tenant, kept["id"], [part_id(api, tenant, kept["id"], b"abc")]).json()["file"]
    assert file["purpose"] == "user_data"
    assert file["expires_at"] is None

    timed = create(api, tenant, 3, expires_after={"anchor": "created_at", "seconds": 7200})
    file = complete(api, tenant, timed["id"], [part_id(api, tenant, timed["id"], b"abc")]).json()["file"]
    assert file["expires_at"] == file["created_at"] + 7200


# ------------------------------------------------------------------------------------------ states


def test_complete_twice_is_409_and_makes_one_file(api: TestClient, tenant: Tenant, settings: ApiSettings) -> None:
    upload = create(api, tenant, 5)
    part = part_id(api, tenant, upload["id"], b"hello")
    assert complete(api, tenant, upload["id"], [part]).status_code == 200

    with pytest.raises(openai.ConflictError) as again:
        sdk(api, tenant).uploads.complete(upload["id"], part_ids=[part])

    assert again.value.status_code == 409
    assert again.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert len(files_stored(settings)) == 1
    assert len(s3_keys(settings, "files/")) == 1


def test_a_completion_that_loses_the_race_is_409_and_leaves_no_bytes(
    api: TestClient, tenant: Tenant, store: Store, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = create(api, tenant, 5)
    part = part_id(api, tenant, upload["id"], b"hello")
    real_assemble = uploads.assemble

    def assemble_while_another_completes(*args: Any, **kwargs: Any) -> None:
        real_assemble(*args, **kwargs)
        store._table.update("upload", upload["id"], set_={"status": "completed"})

    monkeypatch.setattr(uploads, "assemble", assemble_while_another_completes)

    answer = complete(api, tenant, upload["id"], [part])

    assert answer.status_code == 409
    assert files_stored(settings) == []
    assert s3_keys(settings, "files/") == []


def test_a_file_record_that_cannot_be_written_puts_the_upload_back_to_pending(
    api: TestClient, tenant: Tenant, store: Store, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = create(api, tenant, 5)
    part = part_id(api, tenant, upload["id"], b"hello")

    def failing_put_file(record: Any) -> None:
        raise RuntimeError("DynamoDB is down")

    with monkeypatch.context() as patch:
        patch.setattr(store.files, "put", failing_put_file)
        failed = complete(api, tenant, upload["id"], [part])

    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "server_error"
    assert store._table.get("upload", upload["id"])["status"] == "pending"  # type: ignore[index]
    assert s3_keys(settings, "files/") == []
    done = complete(api, tenant, upload["id"], [part])
    assert done.status_code == 200, done.text
    assert content(api, tenant, done.json()["file"]["id"]) == b"hello"


def test_cancel_drops_the_parts_and_then_parts_and_complete_are_409(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    upload = create(api, tenant, 5)
    part = part_id(api, tenant, upload["id"], b"hello")
    assert s3_keys(settings, "uploads/")

    cancelled = sdk(api, tenant).uploads.cancel(upload["id"])

    assert cancelled.status == "cancelled"
    assert cancelled.id == upload["id"]
    assert cancelled.file is None
    assert s3_keys(settings, "uploads/") == []
    late_part = add_part(api, tenant, upload["id"], b"world")
    assert late_part.status_code == 409
    assert "cancelled" in late_part.json()["error"]["message"]
    assert complete(api, tenant, upload["id"], [part]).status_code == 409
    assert api.post(f"/v1/uploads/{upload['id']}/presigned_url", headers=tenant.headers).status_code == 409
    # A retried cancel answers the same cancelled upload.
    again = api.post(f"/v1/uploads/{upload['id']}/cancel", headers=tenant.headers)
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


def test_cancelling_a_completed_upload_is_409(api: TestClient, tenant: Tenant) -> None:
    upload = create(api, tenant, 5)
    done = complete(api, tenant, upload["id"], [part_id(api, tenant, upload["id"], b"hello")])
    assert done.status_code == 200

    answer = api.post(f"/v1/uploads/{upload['id']}/cancel", headers=tenant.headers)

    assert answer.status_code == 409
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert content(api, tenant, done.json()["file"]["id"]) == b"hello"


def test_an_expired_upload_takes_no_parts_and_cannot_complete(
    api: TestClient, tenant: Tenant, store: Store, settings: ApiSettings
) -> None:
    upload = create(api, tenant, 5)
    part = part_id(api, tenant, upload["id"], b"hello")
    store._table.update("upload", upload["id"], set_={"expires_at": int(time.time()) - 1})

    for answer in (
        add_part(api, tenant, upload["id"], b"hello"),
        complete(api, tenant, upload["id"], [part]),
        api.post(f"/v1/uploads/{upload['id']}/presigned_url", headers=tenant.headers),
    ):
        assert answer.status_code == 409
        assert "expired" in answer.json()["error"]["message"]
    assert files_stored(settings) == []


def test_another_tenants_upload_is_404_on_every_route(
    api: TestClient, tenant: Tenant, other_tenant: Tenant, settings: ApiSettings
) -> None:
    upload = create(api, tenant, 5)
    part = part_id(api, tenant, upload["id"], b"hello")
    base = f"/v1/uploads/{upload['id']}"

    for answer in (
        add_part(api, other_tenant, upload["id"], b"hello"),
        complete(api, other_tenant, upload["id"], [part]),
        api.post(f"{base}/cancel", headers=other_tenant.headers),
        api.post(f"{base}/presigned_url", headers=other_tenant.headers),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"] == {
            "message": f"No such Upload object: {upload['id']}",
            "type": "not_found_error",
            "param": "id",
            "code": None,
        }
    with pytest.raises(openai.NotFoundError):
        sdk(api, other_tenant).uploads.complete(upload["id"], part_ids=[part])
    # Untouched by all that: one part staged, still completes for its owner.
    assert len(s3_keys(settings, "uploads/")) == 1
    assert complete(api, tenant, upload["id"], [part]).status_code == 200


# ------------------------------------------------------------------------------------ limits, input


def test_an_upload_over_200_mb_is_413_naming_the_limit(api: TestClient, tenant: Tenant, settings: ApiSettings) -> None:
    items_before = len(all_items(settings))
    answer = api.post(
        "/v1/uploads",
        headers=tenant.headers,
        json={"bytes": MAX_FILE_BYTES + 1, "filename": "f.jsonl", "mime_type": "text/plain", "purpose": "batch"},
    )
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "bytes"
    assert str(MAX_FILE_BYTES) in error["message"]
    assert len(all_items(settings)) == items_before
    assert create(api, tenant, MAX_FILE_BYTES)["bytes"] == MAX_FILE_BYTES


def test_a_part_over_the_direct_limit_is_413_and_not_stored(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    upload = create(api, tenant, settings.max_upload_bytes + 1)

    answer = add_part(api, tenant, upload["id"], b"x" * (settings.max_upload_bytes + 1))

    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["param"] == "data"
    assert str(settings.max_upload_bytes) in error["message"]
    assert s3_keys(settings, "uploads/") == []
    assert add_part(api, tenant, upload["id"], b"x" * settings.max_upload_bytes).status_code == 200


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"purpose": "batch_output"}, "purpose"),
        ({"purpose": "nonsense"}, "purpose"),
        ({"bytes": 0}, "bytes"),
        ({"bytes": "many"}, "bytes"),
        ({"filename": None}, "filename"),
        ({"expires_after": {"anchor": "created_at", "seconds": 60}}, "expires_after.seconds"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_create_bodies_are_422_and_store_nothing(
    api: TestClient, tenant: Tenant, settings: ApiSettings, change: dict[str, Any], param: str
) -> None:
    body = {"bytes": 10, "filename": "f.jsonl", "mime_type": "application/jsonl", "purpose": "batch"} | change
    items_before = len(all_items(settings))
    answer = api.post("/v1/uploads", headers=tenant.headers, json={k: v for k, v in body.items() if v is not None})
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == param
    assert len(all_items(settings)) == items_before


# ---------------------------------------------------------------------------------------- presigned


def test_presigned_put_registers_the_object_as_the_file(api: TestClient, tenant: Tenant, settings: ApiSettings) -> None:
    data = payload(300 * KiB)
    upload = create(api, tenant, len(data))
    before = int(time.time())

    answer = api.post(f"/v1/uploads/{upload['id']}/presigned_url", headers=tenant.headers)

    assert answer.status_code == 200, answer.text
    presigned = answer.json()
    assert presigned["method"] == "PUT"
    assert presigned["headers"] == {"Content-Length": str(len(data))}
    assert before < presigned["expires_at"] <= int(time.time()) + 900
    url = urlsplit(presigned["url"])
    assert url.path.endswith(f"uploads/{tenant.id}/{upload['id']}/object")
    query = parse_qs(url.query)
    assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
    # moto answers PUTs made with `requests` inside mock_aws, standing in for the client's PUT to S3.
    put = requests.put(presigned["url"], data=data, headers=presigned["headers"], timeout=10)
    assert put.status_code == 200

    done = complete(api, tenant, upload["id"], [])

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    file = done.json()["file"]
    assert file["bytes"] == len(data)
    assert content(api, tenant, file["id"]) == data
    assert s3_keys(settings, "uploads/") == []


def test_presigned_put_of_another_size_or_none_at_all_is_422(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    upload = create(api, tenant, 1000)

    nothing = complete(api, tenant, upload["id"], [])
    assert nothing.status_code == 422
    assert nothing.json()["error"]["param"] == "part_ids"

    # Real S3 refuses this PUT (Content-Length is signed); moto does not check, so complete must.
    url = api.post(f"/v1/uploads/{upload['id']}/presigned_url", headers=tenant.headers).json()["url"]
    assert requests.put(url, data=b"x" * 999, timeout=10).status_code == 200
    short = complete(api, tenant, upload["id"], [])
    assert short.status_code == 422
    assert short.json()["error"]["param"] == "part_ids"
    assert "999" in short.json()["error"]["message"]
    assert files_stored(settings) == []


def test_openapi_documents_the_upload_routes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    presigned = paths["/v1/uploads/{upload_id}/presigned_url"]["post"]
    assert "PUT" in presigned["description"] and "part_ids: []" in presigned["description"]
    assert {"404", "409"} <= set(presigned["responses"])
    assert {"413", "422"} <= set(paths["/v1/uploads"]["post"]["responses"])
    assert {"404", "409", "413"} <= set(paths["/v1/uploads/{upload_id}/parts"]["post"]["responses"])
    assert {"404", "409", "422"} <= set(paths["/v1/uploads/{upload_id}/complete"]["post"]["responses"])
    assert "409" in paths["/v1/uploads/{upload_id}/cancel"]["post"]["responses"]


def test_completing_an_upload_with_nothing_uploaded_is_422_not_a_500(api: TestClient, tenant: Tenant) -> None:
    # Issue 7, defect 8: S3 answers a HEAD of a missing key with 403, not 404, to a role that may not list
    # that prefix, so "nothing was PUT" must not depend on telling the two apart.
    upload = create(api, tenant, 3)
    answer = complete(api, tenant, upload["id"], [])
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "part_ids"
