"""The direct upload limit fits Lambda's request limit once API Gateway has base64-encoded the body.

An HTTP API hands a binary body to Lambda base64-encoded (4/3 of its size), inside the event JSON with
its headers and request context; the whole event may be at most 6,291,456 bytes. The events are built
the way API Gateway builds them (events/api_get_file.json is a real one) and given to the real handler.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchline.config import ApiSettings
from batchline.idempotency import Idempotency
from localcloud.lambda_runtime import LambdaContext
from tests.integration.conftest import ROOT, Tenant, load_function

LAMBDA_REQUEST_LIMIT = 6_291_456
# HTTP API refuses a request line and headers over 10 KiB: the most headers an event can carry.
HEADER_BYTES = 10 * 1024
BOUNDARY = "c0ffee" * 5
SAMPLE = json.loads((ROOT / "events" / "api_get_file.json").read_text())


@pytest.fixture
def direct_limit(api: TestClient, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch) -> int:
    """The deployed default limit, not the small one the other tests use."""
    limit = ApiSettings.model_fields["max_upload_bytes"].default
    deps = sys.modules["routes.deps"]
    deployed = settings.model_copy(update={"max_upload_bytes": limit})
    api.app.dependency_overrides[deps.get_settings] = lambda: deployed  # type: ignore[attr-defined]
    # The handler itself registers its context with the idempotency layer.
    monkeypatch.setattr(deps, "get_idempotency", lambda: Idempotency(settings.idempotency_table))
    return limit


def multipart(field: str, content: bytes, extra: dict[str, str]) -> bytes:
    """A form as the openai SDK sends it (httpx): the other fields, then the file with its filename."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in extra.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="requests.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def api_gateway_event(path: str, body: bytes, key: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event of a POST with a binary body, with as many header bytes as allowed."""
    event = copy.deepcopy(SAMPLE)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "POST"
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    headers = event["headers"] | {
        "authorization": f"Bearer {key}",
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        "content-length": str(len(body)),
    }
    used = sum(len(name) + len(value) + 4 for name, value in headers.items())
    headers["x-padding"] = "p" * (HEADER_BYTES - used)  # the rest of what HTTP API lets through
    event["headers"] = headers
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    return event


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    size = len(json.dumps(event).encode())
    assert size < LAMBDA_REQUEST_LIMIT, f"an event of {size} bytes would never reach the function"
    # Lambda's runtime thread has an event loop for Mangum; an earlier asyncio.run() here leaves none.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        answer = load_function("api").lambda_handler(
            event, LambdaContext.called_directly("api", timeout=30, memory_size=1024)
        )
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return answer["statusCode"], json.loads(answer["body"])


def test_the_largest_direct_upload_fits_lambdas_request_limit_and_one_byte_more_is_413(
    tenant: Tenant, direct_limit: int
) -> None:
    largest = multipart("file", b"\xff" * direct_limit, {"purpose": "batch"})
    status, body = invoke(api_gateway_event("/v1/files", largest, tenant.key))
    assert status == 200, body
    assert body["bytes"] == direct_limit
    status, body = invoke(
        api_gateway_event(
            "/v1/files", multipart("file", b"\xff" * (direct_limit + 1), {"purpose": "batch"}), tenant.key
        )
    )
    assert status == 413
    message = body["error"]["message"]
    assert "part_size" in message and "presigned_url" in message and "inbox/" in message


def test_the_largest_upload_part_fits_lambdas_request_limit_and_one_byte_more_is_413(
    api: TestClient, tenant: Tenant, direct_limit: int
) -> None:
    created = api.post(
        "/v1/uploads",
        headers=tenant.headers,
        json={"bytes": 3 * direct_limit, "filename": "big.jsonl", "mime_type": "application/jsonl", "purpose": "batch"},
    ).json()
    path = f"/v1/uploads/{created['id']}/parts"
    status, body = invoke(api_gateway_event(path, multipart("data", b"\xff" * direct_limit, {}), tenant.key))
    assert status == 200, body
    status, body = invoke(api_gateway_event(path, multipart("data", b"\xff" * (direct_limit + 1), {}), tenant.key))
    assert status == 413
    assert str(direct_limit) in body["error"]["message"] and "part_size" in body["error"]["message"]


def test_the_template_and_the_settings_agree_on_the_direct_limit(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["MaxUploadBytes"]
    default = ApiSettings.model_fields["max_upload_bytes"].default
    assert parameter["Default"] == default
    # Deploying a larger limit is refused: base64 of the largest body, and room for its envelope.
    assert parameter["MaxValue"] * 4 / 3 + 64 * 1024 < LAMBDA_REQUEST_LIMIT
