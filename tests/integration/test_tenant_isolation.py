"""Tenancy on every route the app serves: another tenant's key finds nothing, not even that something exists.

The routes come from the app itself, so a new route is checked here as soon as it is served (and fails
until it has a request in api_routes.REQUESTS and, if it is a tenant route, a probe below).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.api_routes import (
    ADMIN_HEADERS,
    PUBLIC_ROUTES,
    REQUEST_LINE,
    Route,
    World,
    batch_body,
    request_for,
    seed,
    served_routes,
)
from tests.integration.conftest import Tenant, load_function

ROUTES = served_routes(load_function("api").app)
KEYED_ROUTES = [r for r in ROUTES if r.key not in PUBLIC_ROUTES]
TENANT_ROUTES = [r for r in ROUTES if r.caller == "tenant"]
ADMIN_ROUTES = [r for r in ROUTES if r.caller == "admin"]
# List routes, and the world's ids each must show its owner and hide from everyone else.
LISTS = {
    ("GET", "/v1/files"): ("file_id", "batch_file_id"),
    ("GET", "/v1/batches"): ("batch_id",),
    ("GET", "/v1/jobs"): ("job_id",),
}
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
def alpha(api: TestClient, tenant: Tenant) -> World:
    return seed(api, tenant)


@pytest.fixture
def bravo(api: TestClient, other_tenant: Tenant) -> World:
    return seed(api, other_tenant)


def world_id(world: World, name: str) -> str:
    return world.path_ids.get(name) or str(getattr(world, name))


def never_existed(object_id: str) -> str:
    """An id of the same shape that no one has."""
    return re.sub(r"[A-Za-z0-9]+$", lambda m: "0" * len(m.group()), object_id)


def masked(answer: Any, object_id: str) -> str:
    """The answer with the id it names blanked: what is left must not depend on whose the object is."""
    return json.dumps(answer.json(), sort_keys=True).replace(object_id, "<id>")


def ok(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def assert_error(answer: Any, status: int, type_: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(answer.json()) == {"error"} and set(error) == OPENAI_ERROR_KEYS
    assert error["type"] == type_
    return error  # type: ignore[no-any-return]


def test_the_routes_open_without_a_key_are_only_the_api_documents(api: TestClient) -> None:
    open_routes = {r.key for r in ROUTES if r.caller == "anyone"}
    assert open_routes == PUBLIC_ROUTES
    assert len(TENANT_ROUTES) + len(ADMIN_ROUTES) == len(KEYED_ROUTES) > 0
    for method, path in sorted(PUBLIC_ROUTES):
        # The documents' static files: one of them stands for all.
        assert api.request(method, path.replace("{path}", "swagger-ui.css")).status_code == 200, path


@pytest.mark.parametrize("route", KEYED_ROUTES, ids=str)
def test_given_no_key_or_the_wrong_kind_of_key_when_any_route_is_called_then_401_or_403(
    api: TestClient, alpha: World, route: Route
) -> None:
    request = request_for(route, alpha)
    for refused in ({}, {"Authorization": "Bearer sk-bl-never-issued"}, {"Authorization": f"Basic {alpha.tenant.key}"}):
        assert_error(api.request(**request, headers=refused), 401, "authentication_error")
    # Admin routes refuse a tenant's key, tenant routes the admin key; the key of the route's kind gets through.
    wrong, right = (alpha.headers, ADMIN_HEADERS) if route.caller == "admin" else (ADMIN_HEADERS, alpha.headers)
    assert_error(api.request(**request, headers=wrong), 403, "permission_error")
    answer = api.request(**request, headers=right)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_given_another_tenants_key_when_a_route_names_an_object_then_it_is_not_there(
    api: TestClient, alpha: World, bravo: World, route: Route
) -> None:
    if route.key in MODEL_ROUTES:
        probe_models(api, alpha, bravo)
    elif "{" in route.path:
        probe_object_route(api, alpha, bravo, route)
    elif route.key in LISTS:
        probe_list_route(api, alpha, bravo, route)
    elif route.key in CREATE_PROBES:
        CREATE_PROBES[route.key](api, alpha, bravo)
    else:
        pytest.fail(f"{route} has no tenant-isolation probe: add one to {__name__}")


def probe_object_route(api: TestClient, alpha: World, bravo: World, route: Route) -> None:
    """Bravo naming alpha's object gets the very answer it gets for an id that never existed."""
    (name,) = re.findall(r"\{(\w+)\}", route.path)
    object_id = alpha.path_ids[name]
    absent_id = never_existed(object_id)

    hidden = api.request(**request_for(route, alpha), headers=bravo.headers)
    absent = api.request(**request_for(route, alpha, **{name: absent_id}), headers=bravo.headers)

    assert_error(hidden, 404, "not_found_error")
    assert masked(hidden, object_id) == masked(absent, absent_id)
    # The owner's same request works: the 404 was tenancy, and bravo's attempt changed nothing.
    owned = api.request(**request_for(route, alpha), headers=alpha.headers)
    assert owned.status_code == 200, owned.text


def probe_list_route(api: TestClient, alpha: World, bravo: World, route: Route) -> None:
    """Bravo's list never shows alpha's objects, and alpha's ids are no cursor for bravo."""
    names = LISTS[route.key]
    alphas = {world_id(alpha, n) for n in names}

    def listed(world: World) -> set[str]:
        answer = api.request(route.method, route.path, headers=world.headers, params={"limit": 100})
        assert answer.status_code == 200, answer.text
        return {item["id"] for item in answer.json()["data"]}

    assert alphas <= listed(alpha)
    assert listed(bravo) == {world_id(bravo, n) for n in names}
    for object_id in alphas:
        absent_id = never_existed(object_id)
        foreign = api.request(route.method, route.path, headers=bravo.headers, params={"after": object_id})
        absent = api.request(route.method, route.path, headers=bravo.headers, params={"after": absent_id})
        assert_error(foreign, 422, "invalid_request_error")
        assert masked(foreign, object_id) == masked(absent, absent_id)


def probe_create_file(api: TestClient, alpha: World, bravo: World) -> None:
    """A file bravo uploads is bravo's, even under the Idempotency-Key alpha used for the same bytes."""
    key = {"Idempotency-Key": "same-key-both-tenants"}
    form: dict[str, Any] = {"files": {"file": ("requests.jsonl", REQUEST_LINE)}, "data": {"purpose": "batch"}}
    alphas = ok(api.post("/v1/files", headers=alpha.headers | key, **form))["id"]
    bravos = ok(api.post("/v1/files", headers=bravo.headers | key, **form))["id"]

    assert bravos != alphas
    assert_error(api.get(f"/v1/files/{bravos}", headers=alpha.headers), 404, "not_found_error")
    assert api.get(f"/v1/files/{bravos}", headers=bravo.headers).status_code == 200
    assert bravos not in {f["id"] for f in api.get("/v1/files", headers=alpha.headers).json()["data"]}


def probe_create_upload(api: TestClient, alpha: World, bravo: World) -> None:
    """An upload bravo starts is bravo's: alpha cannot touch it."""
    route = Route("POST", "/v1/uploads", "tenant")
    upload_id = ok(api.request(**request_for(route, bravo), headers=bravo.headers))["id"]

    assert_error(api.post(f"/v1/uploads/{upload_id}/cancel", headers=alpha.headers), 404, "not_found_error")
    assert api.post(f"/v1/uploads/{upload_id}/cancel", headers=bravo.headers).json()["status"] == "cancelled"


def probe_create_batch(api: TestClient, alpha: World, bravo: World) -> None:
    """Bravo cannot make a batch of alpha's file, nor with alpha's job, nor replay alpha's Idempotency-Key."""
    alpha_job = alpha.tenant.job.id
    key = {"Idempotency-Key": "alpha-batch-key"}
    owned = ok(api.post("/v1/batches", headers=alpha.headers | key, json=batch_body(alpha.batch_file_id, alpha_job)))

    cases = [
        ("input_file_id", alpha.batch_file_id, lambda v: batch_body(v, bravo.tenant.job.id)),
        ("job_id", alpha_job, lambda v: batch_body(bravo.batch_file_id, v)),
    ]
    for param, object_id, body in cases:
        hidden = api.post("/v1/batches", headers=bravo.headers, json=body(object_id))
        absent = api.post("/v1/batches", headers=bravo.headers, json=body(never_existed(object_id)))
        assert assert_error(hidden, 404, "not_found_error")["param"] == param
        assert masked(hidden, object_id) == masked(absent, never_existed(object_id))

    replay = api.post("/v1/batches", headers=bravo.headers | key, json=batch_body(alpha.batch_file_id, alpha_job))
    assert_error(replay, 404, "not_found_error")
    assert owned["id"] not in replay.text
    assert {b["id"] for b in api.get("/v1/batches", headers=bravo.headers).json()["data"]} == {bravo.batch_id}


def probe_models(api: TestClient, alpha: World, bravo: World) -> None:
    """A model name only alpha's job answers to is in alpha's list, and for bravo as absent as any other."""
    job = {"tenant": alpha.tenant.id, "model": "alpha-only-model", "provider": {"type": "mock"}}
    assert api.post("/v1/jobs", headers=ADMIN_HEADERS, json=job).status_code == 200

    def names(world: World) -> set[str]:
        return {m["id"] for m in ok(api.get("/v1/models", headers=world.headers))["data"]}

    assert "alpha-only-model" in names(alpha)
    assert names(bravo) == {bravo.tenant.job.model}
    hidden = api.get("/v1/models/alpha-only-model", headers=bravo.headers)
    absent = api.get("/v1/models/never-a-model-00", headers=bravo.headers)
    assert_error(hidden, 404, "not_found_error")
    assert masked(hidden, "alpha-only-model") == masked(absent, "never-a-model-00")
    assert api.get("/v1/models/alpha-only-model", headers=alpha.headers).status_code == 200


# Model names are not ids: two tenants' jobs may share one, so these routes have a probe of their own.
MODEL_ROUTES = {("GET", "/v1/models"), ("GET", "/v1/models/{model}")}

CREATE_PROBES = {
    ("POST", "/v1/files"): probe_create_file,
    ("POST", "/v1/uploads"): probe_create_upload,
    ("POST", "/v1/batches"): probe_create_batch,
}


def test_every_tenant_route_without_a_path_id_has_a_list_or_create_probe() -> None:
    flat = {r.key for r in TENANT_ROUTES if "{" not in r.path}
    assert flat == set(LISTS) | set(CREATE_PROBES) | {k for k in MODEL_ROUTES if "{" not in k[1]}
