"""Every route the api function serves, who may call it, and a well-formed request to each.

Shared by the tests that must hold for every route: they enumerate the app's own routes, so a route added
without an entry in REQUESTS fails them instead of escaping them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tests.integration.conftest import Tenant

ADMIN_KEY = "admin-secret-key-for-tests"  # what the `settings` fixture stores as the admin key
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The only routes served without a key: the API's own documents.
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        ("GET", "/static-offline-docs/{path}"),
    }
)
# One valid request line, so a batch made from it is a real one.
REQUEST_LINE = (
    b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", '
    b'"body": {"messages": [{"role": "user", "content": "hi"}]}}\n'
)
PART = b"hello, parts"

Caller = Literal["tenant", "admin", "anyone"]


@dataclass(frozen=True)
class Route:
    """One method of one path, and whose key it takes."""

    method: str
    path: str
    caller: Caller

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def served_routes(app: FastAPI) -> list[Route]:
    """The app's routes as it serves them (included routers flattened, prefixes applied), HEAD left out."""
    deps = sys.modules["routes.deps"]
    found: list[Route] = []
    for route in app.routes:
        if isinstance(route, Mount):  # the documents' own static files: public, as the documents are
            found.append(Route("GET", f"{route.path}/{{path}}", "anyone"))
            continue
        contexts = getattr(route, "effective_route_contexts", None)  # FastAPI's included routers
        entries = (
            [(c.path, c.methods, c.original_route) for c in contexts()]
            if contexts is not None
            else [(route.path, route.methods, route)]  # type: ignore[attr-defined]
        )
        for path, methods, original in entries:
            calls = set(_calls(original.dependant)) if hasattr(original, "dependant") else set()
            caller: Caller = "admin" if deps.get_admin in calls else "tenant" if deps.get_tenant in calls else "anyone"
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # as OpenAPI names it: {model}, not {model:path}
            found.extend(Route(method, path, caller) for method in sorted(set(methods) - {"HEAD"}))
    return found


@dataclass(frozen=True)
class World:
    """One tenant's objects, made through the API: one of each kind a route can name."""

    tenant: Tenant
    file_id: str  # a `batch` file no batch uses (deletable)
    batch_file_id: str  # the input of `batch_id`
    batch_id: str  # in `validating`
    upload_id: str  # pending, with one staged part that completes it
    part_id: str
    key_id: str  # the tenant's API key

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers

    @property
    def path_ids(self) -> dict[str, str]:
        """Path parameter values, by the names the routes use."""
        return {
            "file_id": self.file_id,
            "batch_id": self.batch_id,
            "job_id": self.tenant.job.id,
            "upload_id": self.upload_id,
            "tenant_id": self.tenant.id,
            "key_id": self.key_id,
            "model": self.tenant.job.model,
        }


def _ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def upload_file(api: TestClient, headers: dict[str, str], content: bytes = REQUEST_LINE) -> str:
    answer = api.post(
        "/v1/files", headers=headers, files={"file": ("requests.jsonl", content)}, data={"purpose": "batch"}
    )
    return str(_ok(answer)["id"])


def batch_body(file_id: str, job_id: str) -> dict[str, Any]:
    return {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "job_id": job_id,
    }


def seed(api: TestClient, tenant: Tenant) -> World:
    """A tenant's world, made through the routes themselves."""
    file_id = upload_file(api, tenant.headers)
    batch_file_id = upload_file(api, tenant.headers)
    batch = _ok(api.post("/v1/batches", headers=tenant.headers, json=batch_body(batch_file_id, tenant.job.id)))
    upload = _ok(
        api.post(
            "/v1/uploads",
            headers=tenant.headers,
            json={"bytes": len(PART), "filename": "part.jsonl", "mime_type": "application/jsonl", "purpose": "batch"},
        )
    )
    part = _ok(api.post(f"/v1/uploads/{upload['id']}/parts", headers=tenant.headers, files={"data": ("p", PART)}))
    keys = _ok(api.get(f"/v1/admin/tenants/{tenant.id}/api_keys", headers=ADMIN_HEADERS))
    return World(
        tenant=tenant,
        file_id=file_id,
        batch_file_id=batch_file_id,
        batch_id=batch["id"],
        upload_id=upload["id"],
        part_id=part["id"],
        key_id=keys["data"][0]["id"],
    )


def _no_body(_: World) -> dict[str, Any]:
    return {}


# What each route needs besides its path to pass validation, naming the world's objects.
REQUESTS: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    ("POST", "/v1/files"): lambda w: {
        "files": {"file": ("requests.jsonl", REQUEST_LINE)},
        "data": {"purpose": "batch"},
    },
    ("GET", "/v1/files"): _no_body,
    ("GET", "/v1/files/{file_id}"): _no_body,
    ("DELETE", "/v1/files/{file_id}"): _no_body,
    ("GET", "/v1/files/{file_id}/content"): _no_body,
    ("POST", "/v1/batches"): lambda w: {"json": batch_body(w.batch_file_id, w.tenant.job.id)},
    ("GET", "/v1/batches"): _no_body,
    ("GET", "/v1/batches/{batch_id}"): _no_body,
    ("POST", "/v1/batches/{batch_id}/cancel"): lambda w: {"json": {}},  # as the SDK sends it
    ("GET", "/v1/batches/{batch_id}/partial_results"): _no_body,
    ("POST", "/v1/jobs"): lambda w: {
        "json": {"tenant": w.tenant.id, "model": "mock-model", "provider": {"type": "mock"}},
    },
    ("GET", "/v1/jobs"): _no_body,
    ("GET", "/v1/jobs/{job_id}"): _no_body,
    ("DELETE", "/v1/jobs/{job_id}"): _no_body,
    ("GET", "/v1/models"): _no_body,
    ("GET", "/v1/models/{model}"): _no_body,
    ("POST", "/v1/admin/tenants"): lambda w: {"json": {"name": "charlie"}},
    ("GET", "/v1/admin/tenants"): _no_body,
    ("PATCH", "/v1/admin/tenants/{tenant_id}"): lambda w: {"json": {"limits": {"requests_per_second": 50}}},
    ("POST", "/v1/admin/tenants/{tenant_id}/api_keys"): _no_body,
    ("GET", "/v1/admin/tenants/{tenant_id}/api_keys"): _no_body,
    ("DELETE", "/v1/admin/api_keys/{key_id}"): _no_body,
    ("POST", "/v1/uploads"): lambda w: {
        "json": {"bytes": len(PART), "filename": "b.jsonl", "mime_type": "application/jsonl", "purpose": "batch"},
    },
    ("POST", "/v1/uploads/{upload_id}/parts"): lambda w: {"files": {"data": ("p", PART)}},
    ("POST", "/v1/uploads/{upload_id}/complete"): lambda w: {"json": {"part_ids": [w.part_id]}},
    ("POST", "/v1/uploads/{upload_id}/cancel"): _no_body,
    ("POST", "/v1/uploads/{upload_id}/presigned_url"): _no_body,
}


def request_for(route: Route, world: World, **path_ids: str) -> dict[str, Any]:
    """Arguments of `TestClient.request` for a well-formed request to `route` about `world`'s objects.

    `path_ids` replaces some of the world's ids in the path (another tenant's, or ones that never existed).
    """
    if route.key not in REQUESTS:
        raise AssertionError(f"{route} has no entry in tests/integration/api_routes.py REQUESTS: add one")
    url = route.path.format(**(world.path_ids | path_ids))
    return {"method": route.method, "url": url, **REQUESTS[route.key](world)}
