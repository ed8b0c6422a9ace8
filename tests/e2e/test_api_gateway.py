"""The local API sits behind API Gateway's limits, as the deployed one does."""

from __future__ import annotations

from typing import Any

import httpx

from localcloud.apigateway import MAX_BODY_BYTES


def test_a_request_over_10_mb_is_refused_by_api_gateway_not_the_function(local_cloud: Any) -> None:
    headers = {"Authorization": f"Bearer {local_cloud.api_key}", "Content-Type": "application/octet-stream"}
    body = b"x" * (MAX_BODY_BYTES + 1)
    answer = httpx.post(f"{local_cloud.base_url}/files", content=body, headers=headers, timeout=60)
    assert (answer.status_code, answer.json()) == (413, {"message": "Request Entity Too Large"})
