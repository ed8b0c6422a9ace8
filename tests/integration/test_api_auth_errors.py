"""OpenAI's error body on what the framework itself answers: unknown routes and wrong methods.

Auth on every route, and the 500 without a trace, are pinned route by route in test_tenant_isolation.py
and test_openapi_contract.py, over every route the app serves.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.conftest import Tenant


def test_unknown_route_and_wrong_method_answer_in_openai_shape(api: TestClient, tenant: Tenant) -> None:
    missing = api.get("/v1/nothing-here", headers=tenant.headers)
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert missing.json()["error"]["type"] == "not_found_error"
    wrong = api.delete("/v1/batches", headers=tenant.headers)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "invalid_request_error"
    assert "detail" not in wrong.json()
