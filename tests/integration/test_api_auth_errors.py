"""Auth on every route, and OpenAI's error body on every error the framework itself raises."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import Tenant, load_function

ROUTES = [
    ("POST", "/v1/files"),
    ("GET", "/v1/files/file-x"),
    ("GET", "/v1/files/file-x/content"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches/batch_x"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer sk-bl-unknown", "Basic abc", "Bearer "])
def test_every_route_answers_401_without_a_valid_key(
    api: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = api.request(method, path, headers=headers, json={})
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_admin_key_is_not_a_tenant_key(api: TestClient, method: str, path: str) -> None:
    answer = api.request(method, path, headers={"Authorization": "Bearer admin-secret-key-for-tests"}, json={})
    assert answer.status_code == 403
    assert answer.json()["error"]["type"] == "permission_error"


def test_unknown_route_and_wrong_method_answer_in_openai_shape(api: TestClient, tenant: Tenant) -> None:
    missing = api.get("/v1/nothing-here", headers=tenant.headers)
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    wrong = api.delete("/v1/batches/batch_x/content", headers=tenant.headers)
    assert wrong.status_code in (404, 405)
    assert "error" in wrong.json()


def test_an_unexpected_fault_is_a_500_without_a_trace(api: TestClient, tenant: Tenant) -> None:
    module = load_function("api")
    deps = sys.modules["routes.deps"]

    class BrokenStore:
        def get_batch(self, *_: object, **__: object) -> None:
            raise RuntimeError("secret internals: table xyz")

    module.app.dependency_overrides[deps.get_store] = BrokenStore
    answer = api.get("/v1/batches/batch_x", headers=tenant.headers)
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert "secret internals" not in answer.text and "Traceback" not in answer.text
