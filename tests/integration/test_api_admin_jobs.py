"""Admin routes (tenants, keys) and jobs: the admin key manages, tenant keys only read their own."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import Tenant

ADMIN = {"Authorization": "Bearer admin-secret-key-for-tests"}
JOB = {
    "model": "llama-3.1-8b",
    "provider": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_secret": None},
    "use_case": "nightly summaries",
    "sla": {"completion_window": "unlimited", "max_concurrency": 8},
    "allowed_endpoints": ["/v1/chat/completions", "v1/embeddings"],
    "price_1m_tokens": 0.2,
}


def test_admin_creates_a_tenant_whose_key_works_once_shown(api: TestClient) -> None:
    created = api.post("/v1/admin/tenants", headers=ADMIN, json={"name": "acme"}).json()
    assert created["id"].startswith("tenant_")
    assert created["object"] == "tenant"
    assert created["name"] == "acme"
    key = created["api_key"]["key"]
    assert key.startswith("sk-bl-")
    headers = {"Authorization": f"Bearer {key}"}
    assert api.get("/v1/batches", headers=headers).status_code == 200
    listed = api.get(f"/v1/admin/tenants/{created['id']}/api_keys", headers=ADMIN).json()
    assert [k["id"] for k in listed["data"]] == [created["api_key"]["id"]]
    assert listed["data"][0]["key"] is None
    assert key not in str(listed)
    tenants = api.get("/v1/admin/tenants", headers=ADMIN).json()
    assert created["id"] in [t["id"] for t in tenants["data"]]


def test_a_revoked_key_answers_401_from_then_on(api: TestClient, tenant: Tenant) -> None:
    second = api.post(f"/v1/admin/tenants/{tenant.id}/api_keys", headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {second['key']}"}
    assert api.get("/v1/batches", headers=headers).status_code == 200
    deleted = api.delete(f"/v1/admin/api_keys/{second['id']}", headers=ADMIN).json()
    assert deleted == {"id": second["id"], "object": "api_key", "deleted": True}
    assert api.get("/v1/batches", headers=headers).status_code == 401
    assert api.get("/v1/batches", headers=tenant.headers).status_code == 200
    assert api.delete(f"/v1/admin/api_keys/{second['id']}", headers=ADMIN).status_code == 404


ADMIN_ROUTES = [
    ("POST", "/v1/admin/tenants", {"name": "x"}),
    ("GET", "/v1/admin/tenants", None),
    ("POST", "/v1/admin/tenants/tenant_x/api_keys", None),
    ("GET", "/v1/admin/tenants/tenant_x/api_keys", None),
    ("DELETE", "/v1/admin/api_keys/key_x", None),
    ("POST", "/v1/jobs", JOB),
    ("DELETE", "/v1/jobs/job-x", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_refuse_tenant_keys_with_403(
    api: TestClient, tenant: Tenant, method: str, path: str, body: dict | None
) -> None:
    answer = api.request(method, path, headers=tenant.headers, json=body)
    assert answer.status_code == 403
    assert answer.json()["error"]["type"] == "permission_error"


def test_jobs_admin_creates_tenant_reads_own_only(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    job = api.post("/v1/jobs", headers=ADMIN, json={**JOB, "tenant": tenant.id}).json()
    assert job["id"].startswith("job-")
    assert job["object"] == "job"
    assert job["allowed_endpoints"] == ["/v1/chat/completions", "/v1/embeddings"]
    assert api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json() == job
    assert api.get(f"/v1/jobs/{job['id']}", headers=other_tenant.headers).status_code == 404
    assert job["id"] in [j["id"] for j in api.get("/v1/jobs", headers=tenant.headers).json()["data"]]
    assert job["id"] not in [j["id"] for j in api.get("/v1/jobs", headers=other_tenant.headers).json()["data"]]


def test_a_deleted_job_is_gone_and_takes_no_new_batches(api: TestClient, tenant: Tenant) -> None:
    job = api.post("/v1/jobs", headers=ADMIN, json={**JOB, "tenant": tenant.id}).json()
    assert api.delete(f"/v1/jobs/{job['id']}", headers=ADMIN).json()["deleted"] is True
    assert api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).status_code == 404
    assert api.delete(f"/v1/jobs/{job['id']}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"tenant": "tenant_nope"}, "tenant"),
        ({"provider": {"type": "carrier-pigeon"}}, "provider"),
        ({"provider": {"type": "openai"}}, "provider"),
        ({"allowed_endpoints": ["/v1/images"]}, "allowed_endpoints"),
        ({"price_1m_tokens": -1}, "price_1m_tokens"),
        ({"sla": {"max_concurrency": 0}}, "sla"),
    ],
)
def test_bad_jobs_are_refused(api: TestClient, tenant: Tenant, change: dict, param: str) -> None:
    answer = api.post("/v1/jobs", headers=ADMIN, json={**JOB, "tenant": tenant.id, **change})
    assert answer.status_code in (404, 422)
    assert answer.json()["error"]["param"].startswith(param)
