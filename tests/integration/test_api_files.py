"""POST/GET /v1/files through the api function's app, on moto's DynamoDB and S3."""

from __future__ import annotations

import sys
import time
from typing import Any

import boto3
import pytest
import requests
from fastapi.testclient import TestClient

from batchline.config import ApiSettings
from batchline.store import Store
from tests.integration.conftest import Tenant, all_items, load_function

JSONL = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\r\n\n{"x": "\xc3\xa9"}'


def upload(api: TestClient, tenant: Tenant, body: bytes = JSONL, purpose: str = "batch", **form: str):
    return api.post(
        "/v1/files",
        headers=tenant.headers,
        files={"file": ("dir/requests.jsonl", body, "application/jsonl")},
        data={"purpose": purpose, **form},
    )


def s3_keys(settings: ApiSettings) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=settings.bucket_name)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_upload_returns_a_processed_batch_file_that_expires_in_30_days(api: TestClient, tenant: Tenant) -> None:
    before = int(time.time())
    answer = upload(api, tenant)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"].startswith("file-")
    assert body["object"] == "file"
    assert body["bytes"] == len(JSONL)
    assert body["filename"] == "requests.jsonl"
    assert body["purpose"] == "batch"
    assert body["status"] == "processed"
    assert body["status_details"] is None
    assert before <= body["created_at"] <= int(time.time())
    assert body["expires_at"] == body["created_at"] + 30 * 24 * 3600
    assert "tenant_id" not in body and "s3_key" not in body


def test_content_is_byte_identical_and_retrieve_matches_create(api: TestClient, tenant: Tenant) -> None:
    created = upload(api, tenant).json()
    assert api.get(f"/v1/files/{created['id']}", headers=tenant.headers).json() == created
    content = api.get(f"/v1/files/{created['id']}/content", headers=tenant.headers)
    assert content.status_code == 200
    assert content.content == JSONL


def test_expires_after_sets_expiry_and_other_purposes_do_not_expire(api: TestClient, tenant: Tenant) -> None:
    timed = upload(api, tenant, **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "7200"}).json()
    assert timed["expires_at"] == timed["created_at"] + 7200
    kept = upload(api, tenant, purpose="user_data").json()
    assert kept["purpose"] == "user_data"
    assert kept["expires_at"] is None


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"purpose": "batch_output"}, "purpose"),
        ({"purpose": "nonsense"}, "purpose"),
        ({"purpose": "batch", "expires_after[seconds]": "60"}, "expires_after[seconds]"),
        ({"purpose": "batch", "expires_after[seconds]": "forever"}, "expires_after[seconds]"),
        ({"purpose": "batch", "expires_after[anchor]": "last_used", "expires_after[seconds]": "3600"}, None),
        # FastAPI reads an empty value as none at all; found by the contract test's generated cases.
        ({"purpose": "batch", "expires_after[anchor]": "", "expires_after[seconds]": "3600"}, "expires_after[anchor]"),
        ({"purpose": "batch", "expires_after[seconds]": ""}, "expires_after[seconds]"),
    ],
)
def test_bad_upload_forms_answer_422_and_store_nothing(
    api: TestClient, tenant: Tenant, settings: ApiSettings, form: dict[str, str], param: str | None
) -> None:
    items_before = len(all_items(settings))
    answer = api.post("/v1/files", headers=tenant.headers, files={"file": ("f.jsonl", JSONL)}, data=form)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param
    assert len(all_items(settings)) == items_before
    assert s3_keys(settings) == []


def test_missing_file_part_names_the_param(api: TestClient, tenant: Tenant) -> None:
    answer = api.post("/v1/files", headers=tenant.headers, data={"purpose": "batch"})
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "file"


def test_upload_over_the_direct_limit_is_413_naming_the_other_ways_in(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    items_before = len(all_items(settings))
    answer = upload(api, tenant, body=b"x" * (settings.max_upload_bytes + 1))
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "/v1/uploads" in error["message"] and "inbox" in error["message"]
    assert len(all_items(settings)) == items_before
    assert s3_keys(settings) == []


def named(api: TestClient, tenant: Tenant, filename: str) -> Any:
    return api.post(
        "/v1/files",
        headers=tenant.headers,
        files={"file": (filename, JSONL, "application/jsonl")},
        data={"purpose": "batch"},
    )


@pytest.mark.parametrize("length", [513, 2000, 5000, 50_000])
def test_a_filename_over_the_limit_is_refused_naming_the_limit(
    api: TestClient, tenant: Tenant, settings: ApiSettings, length: int
) -> None:
    # Past about 4 KB the multipart parser cannot read the part at all; below it, the route reads the name.
    items_before = len(all_items(settings))

    answer = named(api, tenant, "x" * (length - 6) + ".jsonl")

    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error": {
            "message": "Invalid 'file': its filename is too long; a filename may be at most 512 characters.",
            "type": "invalid_request_error",
            "param": "file",
            "code": None,
        }
    }
    assert len(all_items(settings)) == items_before
    assert s3_keys(settings) == []


def test_a_filename_at_the_limit_is_taken(api: TestClient, tenant: Tenant) -> None:
    name = "é" * 506 + ".jsonl"  # 512 characters, 1,018 bytes of UTF-8

    answer = named(api, tenant, name)

    assert answer.status_code == 200, answer.text
    assert answer.json()["filename"] == name
    assert api.get(f"/v1/files/{answer.json()['id']}", headers=tenant.headers).json()["filename"] == name


def test_unknown_file_is_404_in_openai_shape(api: TestClient, tenant: Tenant) -> None:
    for path in ("/v1/files/file-nope", "/v1/files/file-nope/content"):
        answer = api.get(path, headers=tenant.headers)
        assert answer.status_code == 404
        assert answer.json() == {
            "error": {
                "message": "No such File object: file-nope",
                "type": "not_found_error",
                "param": "id",
                "code": None,
            }
        }


def test_another_tenants_file_is_404(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    created = upload(api, tenant).json()
    for path in (f"/v1/files/{created['id']}", f"/v1/files/{created['id']}/content"):
        answer = api.get(path, headers=other_tenant.headers)
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("recorded", [len(JSONL) + 7, len(JSONL) - 1, 0])
def test_content_whose_bytes_differ_from_its_record_is_a_server_error_before_any_byte(
    api: TestClient, tenant: Tenant, store: Store, recorded: int
) -> None:
    # A record whose size is not its object's: streamed under its Content-Length, the answer would break
    # off mid-way (or run past it), which a client sees as a dropped connection, not as an error.
    file_id = upload(api, tenant).json()["id"]
    store._table.update("file", file_id, set_={"bytes": recorded})

    answer = api.get(f"/v1/files/{file_id}/content", headers=tenant.headers)

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("server_error", None)
    assert file_id in error["message"]
    assert f"{len(JSONL)} bytes" in error["message"] and f"{recorded} bytes" in error["message"]


def test_content_whose_bytes_are_gone_is_a_server_error_before_any_byte(
    api: TestClient, tenant: Tenant, store: Store
) -> None:
    file_id = upload(api, tenant).json()["id"]
    store.objects.delete(store.files.get(tenant.id, file_id).s3_key)

    answer = api.get(f"/v1/files/{file_id}/content", headers=tenant.headers)

    assert answer.status_code == 500
    assert answer.json()["error"]["type"] == "server_error"


def test_content_over_the_inline_limit_redirects_to_a_short_lived_s3_link(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    # Lambda cannot answer more than 6 MB; the SDK follows the redirect (and drops our Authorization).
    data = b"y" * 2048
    file_id = upload(api, tenant, body=data).json()["id"]
    small = settings.model_copy(update={"max_inline_content_bytes": 1024})
    module = load_function("api")
    module.app.dependency_overrides[sys.modules["routes.deps"].get_settings] = lambda: small
    answer = api.get(f"/v1/files/{file_id}/content", headers=tenant.headers, follow_redirects=False)
    assert answer.status_code == 307
    location = answer.headers["location"]
    assert "X-Amz-Expires=900" in location
    assert tenant.key not in location
    # Where the link leads, the bytes are (moto serves S3 in this process).
    assert requests.get(location, timeout=10).content == data
    module.app.dependency_overrides[sys.modules["routes.deps"].get_settings] = lambda: settings
    assert api.get(f"/v1/files/{file_id}/content", headers=tenant.headers).content == data  # small: inline
