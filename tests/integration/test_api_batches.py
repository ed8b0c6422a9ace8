"""POST/GET /v1/batches: the contract's rules, and nothing stored when a request is refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchline.config import ApiSettings
from tests.integration.conftest import Tenant, all_items
from tests.integration.test_api_files import upload


@pytest.fixture
def input_file(api: TestClient, tenant: Tenant) -> str:
    return str(upload(api, tenant).json()["id"])


def request_body(tenant: Tenant, input_file: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "input_file_id": input_file,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "job_id": tenant.job.id,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_create_answers_a_validating_batch_with_the_jobs_model_and_price(
    api: TestClient, tenant: Tenant, input_file: str
) -> None:
    before = int(time.time())
    body = request_body(tenant, input_file, metadata={"team": "search"})
    answer = api.post("/v1/batches", headers=tenant.headers, json=body)
    assert answer.status_code == 200, answer.text
    batch = answer.json()
    assert batch["id"].startswith("batch_")
    assert batch["object"] == "batch"
    assert batch["status"] == "validating"
    assert batch["endpoint"] == "/v1/chat/completions"
    assert batch["input_file_id"] == input_file
    assert batch["job_id"] == tenant.job.id
    assert batch["model"] == "mock-model"
    assert batch["price_1m_tokens"] == 0.5
    assert batch["processing_cost"] == 0
    assert batch["usage"] == {
        "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0},
    }  # fmt: skip
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["metadata"] == {"team": "search"}
    assert batch["errors"] is None and batch["output_file_id"] is None and batch["error_file_id"] is None
    assert before <= batch["created_at"] <= int(time.time())
    assert batch["expires_at"] == batch["created_at"] + 24 * 3600
    for stamp in (
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelled_at",
    ):
        assert batch[stamp] is None
    assert "tenant_id" not in batch
    assert api.get(f"/v1/batches/{batch['id']}", headers=tenant.headers).json() == batch


def test_endpoint_without_slash_is_stored_canonical_and_unlimited_never_expires(
    api: TestClient, tenant: Tenant, input_file: str
) -> None:
    body = request_body(tenant, input_file, endpoint="v1/embeddings", completion_window="unlimited")
    batch = api.post("/v1/batches", headers=tenant.headers, json=body).json()
    assert batch["endpoint"] == "/v1/embeddings"
    assert batch["expires_at"] is None


def test_output_expires_after_is_kept(api: TestClient, tenant: Tenant, input_file: str) -> None:
    expiry = {"anchor": "created_at", "seconds": 3600}
    body = request_body(tenant, input_file, output_expires_after=expiry)
    assert api.post("/v1/batches", headers=tenant.headers, json=body).json()["output_expires_after"] == expiry


BAD_BODIES: list[tuple[str, dict[str, Any], str | None]] = [
    ("missing input file", {"input_file_id": None}, "input_file_id"),
    ("endpoint unknown", {"endpoint": "/v1/images/generations"}, "endpoint"),
    ("endpoint not allowed by the job", {"endpoint": "/v1/completions"}, "endpoint"),
    ("window 48h", {"completion_window": "48h"}, "completion_window"),
    ("window as a number", {"completion_window": 24}, "completion_window"),
    ("file id as a number", {"input_file_id": 42}, "input_file_id"),
    ("metadata as a list", {"metadata": ["a"]}, "metadata"),
    ("17 metadata pairs", {"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ("metadata key of 65", {"metadata": {"k" * 65: "v"}}, "metadata"),
    ("metadata value of 513", {"metadata": {"k": "v" * 513}}, "metadata.k"),
    ("metadata value a number", {"metadata": {"k": 1}}, "metadata.k"),
    (
        "expiry too short",
        {"output_expires_after": {"anchor": "created_at", "seconds": 60}},
        "output_expires_after",
    ),
    ("expiry anchor", {"output_expires_after": {"anchor": "now", "seconds": 3600}}, "output_expires_after"),
    ("unknown field", {"priority": "high"}, "priority"),
]


@pytest.mark.parametrize(("case", "overrides", "param"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_invalid_bodies_answer_422_naming_the_param_and_store_nothing(
    api: TestClient,
    tenant: Tenant,
    input_file: str,
    settings: ApiSettings,
    case: str,
    overrides: dict[str, Any],
    param: str | None,
) -> None:
    items_before = all_items(settings)
    answer = api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, input_file, **overrides))
    assert answer.status_code == 422, case
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] is not None and error["param"].startswith(param or ""), error
    assert all_items(settings) == items_before


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_malformed_json_bodies_answer_422(api: TestClient, tenant: Tenant, settings: ApiSettings, raw: bytes) -> None:
    items_before = all_items(settings)
    answer = api.post("/v1/batches", headers={**tenant.headers, "Content-Type": "application/json"}, content=raw)
    assert answer.status_code == 422
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert all_items(settings) == items_before


def test_unknown_or_foreign_file_and_job_are_404_and_store_nothing(
    api: TestClient, tenant: Tenant, other_tenant: Tenant, input_file: str, settings: ApiSettings
) -> None:
    items_before = all_items(settings)
    cases = [
        (tenant, request_body(tenant, "file-nope"), "input_file_id"),
        (tenant, request_body(tenant, input_file, job_id="job-nope"), "job_id"),
        (other_tenant, request_body(other_tenant, input_file), "input_file_id"),
        (tenant, request_body(other_tenant, input_file), "job_id"),
    ]
    for who, body, param in cases:
        answer = api.post("/v1/batches", headers=who.headers, json=body)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["type"] == "not_found_error"
        assert answer.json()["error"]["param"] == param
    assert all_items(settings) == items_before


def test_a_file_without_purpose_batch_is_refused(api: TestClient, tenant: Tenant, settings: ApiSettings) -> None:
    other_file = upload(api, tenant, purpose="user_data").json()["id"]
    answer = api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, other_file))
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "input_file_id"


def test_unknown_and_foreign_batches_are_404(
    api: TestClient, tenant: Tenant, other_tenant: Tenant, input_file: str
) -> None:
    batch = api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, input_file)).json()
    assert api.get("/v1/batches/batch_nope", headers=tenant.headers).status_code == 404
    foreign = api.get(f"/v1/batches/{batch['id']}", headers=other_tenant.headers)
    assert foreign.status_code == 404
    assert batch["id"] in foreign.json()["error"]["message"]
