"""POST /v1/jobs checks the provider: a base URL the worker may call and a secret under the stack's prefix."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchline.config import ApiSettings
from tests.integration.api_routes import ADMIN_HEADERS
from tests.integration.conftest import Tenant


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
    assert api.get("/v1/jobs", headers=tenant.headers).json()["data"] == [tenant.job.model_dump(mode="json")]


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
