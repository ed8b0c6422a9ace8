"""Idempotency-Key on creates: a replay answers the first result; another body is 409; races make one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from batchline.store import Store
from tests.integration.conftest import Tenant
from tests.integration.test_api_batches import request_body
from tests.integration.test_api_files import upload


def test_a_replayed_batch_create_gives_the_same_batch(api: TestClient, tenant: Tenant, store: Store) -> None:
    file_id = upload(api, tenant).json()["id"]
    headers = {**tenant.headers, "Idempotency-Key": "create-1"}
    first = api.post("/v1/batches", headers=headers, json=request_body(tenant, file_id))
    second = api.post("/v1/batches", headers=headers, json=request_body(tenant, file_id))
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    batches, _ = store.batches.page(tenant.id, after=None, limit=100)
    assert len(batches) == 1


def test_the_same_key_with_another_body_is_409(api: TestClient, tenant: Tenant, store: Store) -> None:
    file_id = upload(api, tenant).json()["id"]
    headers = {**tenant.headers, "Idempotency-Key": "create-2"}
    api.post("/v1/batches", headers=headers, json=request_body(tenant, file_id))
    other = api.post("/v1/batches", headers=headers, json=request_body(tenant, file_id, metadata={"a": "b"}))
    assert other.status_code == 409
    assert other.json()["error"]["param"] == "Idempotency-Key"
    assert len(store.batches.page(tenant.id, after=None, limit=100)[0]) == 1


def test_keys_are_per_tenant(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    ours = upload(api, tenant).json()["id"]
    theirs = upload(api, other_tenant).json()["id"]
    key = {"Idempotency-Key": "shared"}
    a = api.post("/v1/batches", headers={**tenant.headers, **key}, json=request_body(tenant, ours)).json()
    b = api.post("/v1/batches", headers={**other_tenant.headers, **key}, json=request_body(other_tenant, theirs))
    assert b.status_code == 200
    assert b.json()["id"] != a["id"]


def test_a_refused_create_is_not_remembered(api: TestClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "create-3"}
    assert api.post("/v1/batches", headers=headers, json=request_body(tenant, "file-nope")).status_code == 404
    file_id = upload(api, tenant).json()["id"]
    # Validation (422) happens before the key is taken; a 404 from the core releases it.
    assert api.post("/v1/batches", headers=headers, json=request_body(tenant, "file-nope")).status_code == 404
    assert (
        api.post(
            "/v1/batches", headers={**tenant.headers, "Idempotency-Key": "create-4"}, json=request_body(tenant, file_id)
        ).status_code
        == 200
    )


def test_file_upload_replay_and_conflict(api: TestClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "upload-1"}
    files = {"file": ("a.jsonl", b'{"a": 1}\n')}
    first = api.post("/v1/files", headers=headers, files=files, data={"purpose": "batch"}).json()
    again = api.post("/v1/files", headers=headers, files=files, data={"purpose": "batch"}).json()
    assert again == first
    other = api.post("/v1/files", headers=headers, files={"file": ("a.jsonl", b"x")}, data={"purpose": "batch"})
    assert other.status_code == 409


def test_concurrent_creates_with_one_key_make_one_batch(api: TestClient, tenant: Tenant, store: Store) -> None:
    file_id = upload(api, tenant).json()["id"]
    headers = {**tenant.headers, "Idempotency-Key": "race"}
    body = request_body(tenant, file_id)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: api.post("/v1/batches", headers=headers, json=body), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409}
    ids = {a.json()["id"] for a in answers if a.status_code == 200}
    assert len(ids) == 1
    assert len(store.batches.page(tenant.id, after=None, limit=100)[0]) == 1
    # What a client retrying its 409 gets: the one batch.
    assert api.post("/v1/batches", headers=headers, json=body).json()["id"] in ids
