"""POST /v1/jobs checks the provider: a base URL the worker may call and a secret under the stack's prefix."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchline import files
from batchline.config import ApiSettings
from batchline.finalizing import finalize
from batchline.models import JobObject, JobRecord, OpenAIProvider, public
from batchline.planning import plan
from batchline.store import Store
from tests.integration import stack as stack_module
from tests.integration.api_routes import ADMIN_HEADERS
from tests.integration.conftest import Tenant
from tests.integration.test_least_privilege import a_batch, succeeded


def job(tenant: Tenant, **provider: Any) -> dict[str, Any]:
    return {"tenant": tenant.id, "model": "m", "provider": {"type": "openai", **provider}}


def on_aws(api: TestClient, settings: ApiSettings) -> None:
    """The api as the template deploys it by default: no private backends."""
    deps = sys.modules["routes.deps"]
    strict = settings.model_copy(update={"allow_private_backends": False})
    sys.modules["batchline_fn_api"].app.dependency_overrides[deps.get_settings] = lambda: strict


@pytest.mark.parametrize(
    "base_url",
    ["http://169.254.169.254/latest", "http://[fd00:ec2::254]/", "http://metadata.google.internal/", "ftp://x/v1",
     "http:///v1", "http://[fe80::1]:8000/v1"],
)  # fmt: skip
def test_a_job_naming_a_link_local_or_metadata_url_is_refused_naming_the_field(
    api: TestClient, tenant: Tenant, base_url: str
) -> None:
    answer = api.post("/v1/jobs", headers=ADMIN_HEADERS, json=job(tenant, base_url=base_url))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "provider.base_url"
    assert api.get("/v1/jobs", headers=tenant.headers).json()["data"] == [
        public(JobObject, tenant.job).model_dump(mode="json")
    ]


def test_loopback_and_private_backends_only_when_the_stack_allows_them(
    api: TestClient, tenant: Tenant, settings: ApiSettings
) -> None:
    body = job(tenant, base_url="http://127.0.0.1:8000/v1")
    assert api.post("/v1/jobs", headers=ADMIN_HEADERS, json=body).status_code == 200  # the tests' stack allows them
    on_aws(api, settings)
    for url in ("http://127.0.0.1:8000/v1", "http://10.1.2.3/v1", "http://[::1]/v1", "http://localhost/v1"):
        answer = api.post("/v1/jobs", headers=ADMIN_HEADERS, json=job(tenant, base_url=url))
        assert (answer.status_code, answer.json()["error"]["param"]) == (422, "provider.base_url"), url
    public = job(tenant, base_url="https://models.example.com/v1", api_key_secret="batchline/models")
    assert api.post("/v1/jobs", headers=ADMIN_HEADERS, json=public).status_code == 200


@pytest.mark.parametrize("secret", ["prod/db-password", "batchline/", "arn:aws:secretsmanager:us-east-1:1:secret:x"])
def test_a_key_secret_outside_the_stacks_prefix_is_refused_naming_the_field(
    api: TestClient, tenant: Tenant, secret: str
) -> None:
    body = job(tenant, base_url="https://models.example.com/v1", api_key_secret=secret)
    answer = api.post("/v1/jobs", headers=ADMIN_HEADERS, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "provider.api_key_secret"


def test_the_worker_answers_a_stored_job_with_a_metadata_url_as_error_lines_not_a_crash(
    store: Store, tenant: Tenant, stack: stack_module.Stack
) -> None:
    """A job stored before create checked its URL: the worker, under its own role, calls nothing."""
    job = JobRecord(
        id="job-legacy",
        tenant_id=tenant.id,
        model="m",
        provider=OpenAIProvider(type="openai", base_url="http://169.254.169.254/latest/meta-data/"),
        created_at=0,
    )
    store.jobs.put(job)
    batch = a_batch(store, tenant, job, lines=2)
    planned = plan(store, batch.id, lines_per_chunk=10, requests_per_worker=1_000)  # one worker: one chunk
    [chunk] = json.loads(b"".join(store.objects.stream(planned["manifest_key"])))
    progress = succeeded(stack.invoke("WorkerFunction", {"batch_id": batch.id, "chunk": chunk, "cursor": 0}))
    assert progress["done"] is True
    ended = finalize(store, lambda *_: None, batch.id, None)
    assert ended["status"] == "completed"  # as OpenAI ends a batch whose every line failed
    record = store.batches.get_unscoped(batch.id)
    assert (record.request_counts.completed, record.request_counts.failed) == (0, 2)
    assert record.error_file_id is not None
    errors = [
        json.loads(x)
        for x in b"".join(store.objects.stream(files.file_key(tenant.id, record.error_file_id))).splitlines()
    ]
    assert [(e["custom_id"], e["response"], e["error"]["code"]) for e in errors] == [
        ("r0", None, "upstream_unavailable"),
        ("r1", None, "upstream_unavailable"),
    ]
    assert all("metadata service" in e["error"]["message"] for e in errors)
