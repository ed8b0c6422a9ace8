"""Headers OpenAI clients rely on: `x-request-id` on every answer, `x-should-retry: false` on a final 409."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from batchline import files
from batchline.errors import Conflict, to_http
from batchline.store import Store
from localcloud import lambda_runtime
from tests.integration.conftest import Tenant, load_function
from tests.integration.test_api_lists import create_batches

EVENTS = Path(__file__).parents[2] / "events"


def test_every_answer_has_its_own_request_id(api: TestClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = api.get("/v1/files", headers=tenant.headers)
    unauthenticated = api.get("/v1/files")
    missing = api.get("/v1/files/file-nope", headers=tenant.headers)
    invalid = api.post("/v1/batches", headers=tenant.headers, json={})
    unrouted = api.get("/v1/nowhere", headers=tenant.headers)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a defect")

    monkeypatch.setattr(files, "create_file", broken)
    crashed = api.post(
        "/v1/files", headers=tenant.headers, files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"}
    )

    answers = [ok, unauthenticated, missing, invalid, unrouted, crashed]
    assert [a.status_code for a in answers] == [200, 401, 404, 422, 404, 500]
    request_ids = [a.headers.get("x-request-id", "") for a in answers]
    assert all(rid.startswith("req_") for rid in request_ids), request_ids
    assert len(set(request_ids)) == len(answers)
    # A 500 comes from the outermost handler, past the middleware: it says where the key stands too.
    assert "x-ratelimit-limit-requests" in crashed.headers


def test_behind_api_gateway_the_request_id_is_api_gateways(api: TestClient) -> None:
    """API Gateway's id is the one its access logs and the function's logs carry: the one to quote."""
    module = load_function("api")
    event = json.loads((EVENTS / "api_get_file.json").read_text())
    event["headers"].pop("authorization", None)
    event["requestContext"]["requestId"] = "Ab1CdEfGhIjKlMn="
    with lambda_runtime.thread_event_loop():  # as the runtime's thread has
        answer = module._asgi(event, SimpleNamespace())  # Mangum only passes the context on
    assert answer["statusCode"] == 401
    assert answer["headers"]["x-request-id"] == "Ab1CdEfGhIjKlMn="


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_a_409_no_retry_can_fix_is_sent_once_by_the_sdk(
    api: TestClient, tenant: Tenant, store: Store, status: str
) -> None:
    batch_id = create_batches(api, tenant, 1)[0]
    store._table.update("batch", batch_id, set_={"status": status})
    sent: list[httpx.Request] = []
    api.event_hooks["request"].append(sent.append)
    client = openai.OpenAI(base_url="http://testserver/v1", api_key=tenant.key, http_client=api, max_retries=2)
    with pytest.raises(openai.ConflictError) as refused:
        client.batches.cancel(batch_id)
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert [r.url.path for r in sent] == [f"/v1/batches/{batch_id}/cancel"]


def test_a_409_that_may_pass_later_leaves_retrying_to_the_client() -> None:
    """An Idempotency-Key still in progress: the SDK's retry (with backoff) is what the client wants."""
    _, final = to_http(Conflict("Batch batch_1 is no longer in in_progress."))
    later = Conflict("A request with this Idempotency-Key is still in progress; retry shortly.", retryable=True)
    assert final["error"]["message"].startswith("Batch")
    assert Conflict("x").headers == {"x-should-retry": "false"}
    assert later.headers == {}
