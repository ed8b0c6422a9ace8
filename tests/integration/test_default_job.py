"""Code written for OpenAI names no job: a batch without `job_id` finds its job, lines may name an alias.

A batch takes the job it names; else the tenant's default job (an admin's choice); else the one job of the
tenant that allows the endpoint; else 422 naming `job_id`. A line's `body.model` may be the job's model or
one of its `model_aliases`; the upstream always receives the job's model. GET /v1/models lists the names.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchline import batches, files
from batchline.models import BatchCreate
from batchline.planning import plan
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant, all_items
from tests.integration.test_api_files import upload

ADMIN = {"Authorization": "Bearer admin-secret-key-for-tests"}
CHAT = "/v1/chat/completions"


def new_job(api: TestClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"tenant": tenant.id, "model": "served-model", "provider": {"type": "mock"}, **fields}
    answer = api.post("/v1/jobs", headers=ADMIN, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def create(api: TestClient, tenant: Tenant, **fields: Any) -> Any:
    file_id = upload(api, tenant).json()["id"]
    body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **fields}
    return api.post("/v1/batches", headers=tenant.headers, json=body)


def set_default(api: TestClient, tenant: Tenant, job_id: str | None) -> Any:
    return api.patch(f"/v1/admin/tenants/{tenant.id}", headers=ADMIN, json={"default_job_id": job_id})


def test_the_one_job_that_allows_the_endpoint_runs_a_batch_that_names_none(api: TestClient, tenant: Tenant) -> None:
    new_job(api, tenant, allowed_endpoints=["/v1/embeddings"])  # another job, not for chat
    answer = create(api, tenant)
    assert answer.status_code == 200, answer.text
    assert answer.json()["job_id"] == tenant.job.id
    assert answer.json()["model"] == tenant.job.model


def test_two_jobs_for_the_endpoint_and_no_default_is_422_naming_job_id(
    api: TestClient, tenant: Tenant, settings: Any
) -> None:
    new_job(api, tenant)
    file_id = upload(api, tenant).json()["id"]
    before = all_items(settings)
    answer = api.post(
        "/v1/batches",
        headers=tenant.headers,
        json={"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["param"] == "job_id"
    assert "2 of this project's jobs allow /v1/chat/completions" in error["message"]
    assert all_items(settings) == before


def test_an_admin_sets_and_unsets_a_tenants_default_job(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    second = new_job(api, tenant)
    answer = set_default(api, tenant, second["id"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["default_job_id"] == second["id"]
    assert create(api, tenant).json()["job_id"] == second["id"]
    # Naming a job still wins over the default.
    assert create(api, tenant, job_id=tenant.job.id).json()["job_id"] == tenant.job.id
    # Only one of the tenant's own jobs can be its default.
    refused = set_default(api, tenant, other_tenant.job.id)
    assert refused.status_code == 404 and refused.json()["error"]["param"] == "default_job_id"
    # Limits and the default are set apart: one PATCH leaves the other as it was.
    limits = api.patch(f"/v1/admin/tenants/{tenant.id}", headers=ADMIN, json={"limits": {"requests_per_second": 7}})
    assert limits.json()["default_job_id"] == second["id"]
    unset = set_default(api, tenant, None).json()
    assert unset["default_job_id"] is None and unset["limits"]["requests_per_second"] == 7
    assert create(api, tenant).status_code == 422  # two chat jobs again, and no default


def test_a_retired_default_is_as_if_there_were_none(api: TestClient, tenant: Tenant) -> None:
    second = new_job(api, tenant)
    set_default(api, tenant, second["id"])
    assert api.delete(f"/v1/jobs/{second['id']}", headers=ADMIN).status_code == 200
    assert create(api, tenant).json()["job_id"] == tenant.job.id  # the one chat job left


@pytest.mark.parametrize("aliases", [["gpt-4o-mini", "gpt-4o"], ["gpt-4o", "gpt-4o"], ["served-model"]])
def test_aliases_are_distinct_names_other_than_the_model(api: TestClient, tenant: Tenant, aliases: list[str]) -> None:
    answer = api.post(
        "/v1/jobs",
        headers=ADMIN,
        json={"tenant": tenant.id, "model": "served-model", "provider": {"type": "mock"}, "model_aliases": aliases},
    )
    assert answer.status_code == (200 if aliases == ["gpt-4o-mini", "gpt-4o"] else 422), answer.text


def test_a_line_may_name_an_alias_and_any_other_model_is_a_mismatch(
    api: TestClient, store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    job = new_job(api, tenant, model_aliases=["gpt-4o-mini"])
    lines = [
        {
            "custom_id": name,
            "method": "POST",
            "url": CHAT,
            "body": {"model": name, "messages": [{"role": "user", "content": "hi"}]},
        }
        for name in ("served-model", "gpt-4o-mini", "gpt-4o")
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create_ = BatchCreate(input_file_id=record.id, endpoint=CHAT, completion_window="24h", job_id=job["id"])
    batch = batches.create_batch(store, runs, tenant.id, create_)
    assert plan(store, batch.id, lines_per_chunk=10, requests_per_worker=25)["status"] == "failed"
    errors = store.batches.get_unscoped(batch.id).errors
    assert errors is not None
    assert [(e.code, e.line, e.message) for e in errors.data] == [
        (
            "model_mismatch",
            3,
            "The model \"gpt-4o\" does not match the job's model 'served-model' or its aliases (gpt-4o-mini).",
        )
    ]


def test_models_lists_the_tenants_models_and_aliases(api: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    job = new_job(api, tenant, model="meta-llama/Llama-3.1-8B", model_aliases=["gpt-4o-mini"])
    listed = api.get("/v1/models", headers=tenant.headers).json()
    assert listed["object"] == "list"
    assert [(m["id"], m["owned_by"]) for m in listed["data"]] == [
        ("gpt-4o-mini", job["id"]),
        ("meta-llama/Llama-3.1-8B", job["id"]),
        (tenant.job.model, tenant.job.id),
    ]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in listed["data"])
    one = api.get("/v1/models/meta-llama/Llama-3.1-8B", headers=tenant.headers)
    assert one.status_code == 200 and one.json()["id"] == "meta-llama/Llama-3.1-8B"
    # Another tenant sees only its own.
    assert [m["id"] for m in api.get("/v1/models", headers=other_tenant.headers).json()["data"]] == [
        other_tenant.job.model
    ]
    missing = api.get("/v1/models/gpt-4o-mini", headers=other_tenant.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
