"""Lists, delete and cancel: pagination that ends, ownership, and conditional state changes."""

from __future__ import annotations

import time

import boto3
import pytest
from fastapi.testclient import TestClient

from batchline.config import ApiSettings
from batchline.store import Store
from tests.integration.conftest import Tenant
from tests.integration.test_api_batches import request_body
from tests.integration.test_api_files import s3_keys, upload


def create_batches(api: TestClient, tenant: Tenant, count: int) -> list[str]:
    file_id = upload(api, tenant).json()["id"]
    return [
        api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, file_id)).json()["id"]
        for _ in range(count)
    ]


def walk(api: TestClient, tenant: Tenant, path: str, **params: object) -> list[dict]:
    """Every page, the way the SDK walks them: `after` = last id, until has_more is false."""
    seen: list[dict] = []
    after = None
    for _ in range(100):
        query = dict(params, **({"after": after} if after else {}))
        page = api.get(path, headers=tenant.headers, params=query).json()
        assert page["object"] == "list"
        seen.extend(page["data"])
        if not page["has_more"]:
            return seen
        assert page["last_id"] == page["data"][-1]["id"]
        after = page["last_id"]
    raise AssertionError("pagination did not end")


def test_batches_list_newest_first_each_exactly_once(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    ids = create_batches(api, tenant, 7)
    create_batches(api, other_tenant, 2)
    listed = [b["id"] for b in walk(api, tenant, "/v1/batches", limit=3)]
    assert listed == list(reversed(ids))
    first = api.get("/v1/batches", headers=tenant.headers, params={"limit": 3}).json()
    assert first["first_id"] == ids[-1]
    assert first["has_more"] is True


@pytest.mark.parametrize("after", ["batch_unknown", "file-xyz"])
def test_a_bad_cursor_is_422_not_a_loop(api: TestClient, tenant: Tenant, after: str) -> None:
    create_batches(api, tenant, 2)
    answer = api.get("/v1/batches", headers=tenant.headers, params={"after": after})
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "after"


def test_another_tenants_id_is_not_a_cursor(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    foreign = create_batches(api, other_tenant, 1)[0]
    assert api.get("/v1/batches", headers=tenant.headers, params={"after": foreign}).status_code == 422


@pytest.mark.parametrize("limit", [0, 101, "x"])
def test_batch_list_limit_bounds(api: TestClient, tenant: Tenant, limit: object) -> None:
    answer = api.get("/v1/batches", headers=tenant.headers, params={"limit": limit})
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "limit"


def test_files_list_orders_filters_and_hides_expired(
    api: TestClient, tenant: Tenant, other_tenant: Tenant, store: Store
) -> None:
    batch_files = [upload(api, tenant).json()["id"] for _ in range(3)]
    other = upload(api, tenant, purpose="user_data").json()["id"]
    upload(api, other_tenant)
    expired = upload(api, tenant).json()["id"]
    store._table.update("file", expired, set_={"expires_at": int(time.time()) - 1})

    assert [f["id"] for f in walk(api, tenant, "/v1/files", limit=2)] == [other, *reversed(batch_files)]
    assert [f["id"] for f in walk(api, tenant, "/v1/files", order="asc")] == [*batch_files, other]
    assert [f["id"] for f in walk(api, tenant, "/v1/files", purpose="batch")] == list(reversed(batch_files))
    assert api.get(f"/v1/files/{expired}", headers=tenant.headers).status_code == 404


def test_expired_files_carry_the_ttl_dynamodb_removes_them_by(api: TestClient, tenant: Tenant, store: Store) -> None:
    created = upload(api, tenant).json()
    item = store._table.get("file", created["id"])
    assert item is not None
    assert item["ttl"] == created["expires_at"]


def test_delete_removes_record_and_bytes(api: TestClient, tenant: Tenant, settings: ApiSettings) -> None:
    file_id = upload(api, tenant, purpose="user_data").json()["id"]
    answer = api.delete(f"/v1/files/{file_id}", headers=tenant.headers)
    assert answer.json() == {"id": file_id, "object": "file", "deleted": True}
    assert api.get(f"/v1/files/{file_id}", headers=tenant.headers).status_code == 404
    assert s3_keys(settings) == []


def test_delete_of_a_file_a_running_batch_uses_is_409(
    api: TestClient, tenant: Tenant, other_tenant: Tenant, store: Store
) -> None:
    file_id = upload(api, tenant).json()["id"]
    batch_id = api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, file_id)).json()["id"]
    assert api.delete(f"/v1/files/{file_id}", headers=other_tenant.headers).status_code == 404
    answer = api.delete(f"/v1/files/{file_id}", headers=tenant.headers)
    assert answer.status_code == 409
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert store.batches.release_input(store.batches.get_unscoped(batch_id))  # the batch ended
    assert not store.batches.release_input(store.batches.get_unscoped(batch_id))  # once only
    assert api.delete(f"/v1/files/{file_id}", headers=tenant.headers).status_code == 200


def test_cancel_moves_validating_to_cancelling_once(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    batch_id = create_batches(api, tenant, 1)[0]
    assert api.post(f"/v1/batches/{batch_id}/cancel", headers=other_tenant.headers).status_code == 404
    cancelled = api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers).json()
    assert cancelled["status"] == "cancelling"
    assert cancelled["cancelling_at"] is not None
    again = api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers).json()
    assert again["cancelling_at"] == cancelled["cancelling_at"]


@pytest.mark.parametrize("status", ["completed", "failed", "expired", "finalizing"])
def test_cancel_from_a_terminal_state_is_409(api: TestClient, tenant: Tenant, store: Store, status: str) -> None:
    batch_id = create_batches(api, tenant, 1)[0]
    store._table.update("batch", batch_id, set_={"status": status})
    answer = api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers)
    assert answer.status_code == 409
    assert status in answer.json()["error"]["message"]
    assert api.get(f"/v1/batches/{batch_id}", headers=tenant.headers).json()["status"] == status


def test_stored_objects_are_encrypted_at_rest_by_the_bucket(
    settings: ApiSettings, api: TestClient, tenant: Tenant
) -> None:
    # The bucket's default encryption (template) applies; the code never writes a public ACL.
    upload(api, tenant)
    key = s3_keys(settings)[0]
    acl = boto3.client("s3").get_object_acl(Bucket=settings.bucket_name, Key=key)
    assert all(g["Grantee"].get("URI") is None for g in acl["Grants"])
