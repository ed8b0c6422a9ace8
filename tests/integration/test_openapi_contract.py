"""GET /openapi.json is the contract: what it documents is what every route answers, and it says what
API.md says (OpenAI's error body on every error, `purpose` as an enum, a summary and description each).

The property-based part is schemathesis against the ASGI app on moto: requests generated from the document,
valid and invalid, some naming real objects of the caller's, each answer checked against the document.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
import schemathesis
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.api_routes import (
    ADMIN_HEADERS,
    ADMIN_KEY,
    PUBLIC_ROUTES,
    Route,
    World,
    batch_body,
    request_for,
    seed,
    served_routes,
)
from tests.integration.conftest import Tenant, load_function

APP = load_function("api").app
DOCUMENT = APP.openapi()
ROUTES = [r for r in served_routes(APP) if r.key not in PUBLIC_ROUTES]
OPERATIONS = [(path, method.upper(), op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items()]

# Requests per operation. Enough to reach the success path (through `known_objects`) and the branches of
# validation, few enough for `make test`. Invalid cases of an operation with only a path id are mostly
# missing or broken keys, hence fewer.
VALID_EXAMPLES = 20
INVALID_EXAMPLES = 10


def schemathesis_config(key: str) -> schemathesis.Config:
    """Deterministic generation, every check but one, and `key` sent through the document's bearer scheme
    (so that the cases that leave the key out really go without it)."""
    return schemathesis.Config.from_dict(
        {
            # Unknown query parameters are ignored, as OpenAI does: not a case worth generating.
            "generation": {"deterministic": True, "database": "none", "allow-extra-parameters": False},
            "auth": {"openapi": {"ApiKey": {"bearer": key}}, "auto-signup": False},
            "checks": {
                # A schema-valid cursor or id that names nothing is a 404/422 by contract, not a rejection.
                "positive_data_acceptance": {"enabled": False},
            },
        }
    )


OPENAI_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
}
UPLOAD_PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
FILE_PURPOSES = UPLOAD_PURPOSES | {"assistants_output", "batch_output", "fine-tune-results"}
# Query `after` of each list: a real id of the listed kind.
CURSORS = {
    "/v1/files": lambda w: w.file_id,
    "/v1/batches": lambda w: w.batch_id,
    "/v1/jobs": lambda w: w.tenant.job.id,
    "/v1/admin/tenants": lambda w: w.tenant.id,
    "/v1/admin/tenants/{tenant_id}/api_keys": lambda w: w.key_id,
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def known_objects(case: Any, route: Route, world: World) -> None:
    """Make a valid case name the caller's real objects, so that generation reaches the success paths too."""
    for name in case.path_parameters or {}:
        case.path_parameters[name] = world.path_ids[name]
    if case.query and "after" in case.query and route.path in CURSORS:
        case.query["after"] = CURSORS[route.path](world)
    if isinstance(case.body, dict):
        known = {
            "input_file_id": world.file_id,
            "job_id": world.tenant.job.id,
            "tenant": world.tenant.id,
            "part_ids": [world.part_id],
        }
        case.body.update({k: v for k, v in known.items() if k in case.body})


def null_file_part(case: Any) -> bool:
    """Whether a multipart case's binary part is None, which multipart can only send as text."""
    if case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return False
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    properties = resolve(content.get("multipart/form-data", {}).get("schema", {})).get("properties", {})
    binary = {name for name, prop in properties.items() if prop.get("format") == "binary"}
    return any(case.body.get(name, "") is None for name in binary)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_given_generated_requests_when_sent_then_no_5xx_and_every_answer_is_as_documented(
    api: TestClient, tenant: Tenant, route: Route
) -> None:
    world = seed(api, tenant)
    # Admin routes run with the admin key, the others with the tenant's: each with the key it takes.
    key = ADMIN_KEY if route.caller == "admin" else world.tenant.key
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app, config=schemathesis_config(key))
    operation = schema[route.path][route.method]

    def run(mode: GenerationMode, examples: int) -> None:
        @given(case=operation.as_strategy(mode), name_known_objects=st.booleans())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def send(case: Any, name_known_objects: bool) -> None:
            # A multipart file "mutated" to null is sent as the four bytes `null`: a valid upload, not the
            # invalid case schemathesis believes it made (which of its cases come up depends on test order).
            assume(not (mode is GenerationMode.NEGATIVE and null_file_part(case)))
            # Only valid cases name real objects: an invalid case must stay invalid where it was made so.
            if mode is GenerationMode.POSITIVE and name_known_objects:
                known_objects(case, route, world)
            case.call_and_validate()

        send()

    run(GenerationMode.POSITIVE, VALID_EXAMPLES)
    run(GenerationMode.NEGATIVE, INVALID_EXAMPLES)


# Jobs DynamoDB could not store, one request each: the field at fault, whether the value may be taken
# (as 0: a price or rate that small means nothing else), and why it once was a 500.
JOB_DEFECTS = {
    "empty tenant": (
        {"tenant": ""},
        "tenant",
        False,
        "JobCreate.tenant needs min_length=1: an empty id reaches DynamoDB, which refuses empty key values",
    ),
    "price too large": (
        {"price_1m_tokens": 1e300},
        "price_1m_tokens",
        False,
        "JobCreate.price_1m_tokens needs an upper bound (le=1e6) and allow_inf_nan=False: DynamoDB refuses "
        "magnitudes over 1e126",
    ),
    "price too small": (
        {"price_1m_tokens": 1e-300},
        "price_1m_tokens",
        True,
        "JobCreate.price_1m_tokens needs rounding (AfterValidator round(v, 9)): DynamoDB refuses magnitudes "
        "under 1e-130",
    ),
    "failure rate too small": (
        {"provider": {"type": "mock", "failure_rate": 1e-300}},
        "provider",
        True,
        "MockProvider.failure_rate needs rounding (AfterValidator round(v, 6)): DynamoDB refuses magnitudes "
        "under 1e-130",
    ),
}


def assert_taken_or_refused(answer: Any, field: str, *, may_take: bool) -> None:
    """Never a 500: a 4xx naming `field` (or, if `may_take`, a 200)."""
    if may_take and answer.status_code == 200:
        return
    assert 400 <= answer.status_code < 500, answer.text
    assert (answer.json()["error"]["param"] or "").startswith(field), answer.text


@pytest.mark.parametrize(
    ("fields", "field", "may_take"),
    [pytest.param(fields, field, may_take, id=name) for name, (fields, field, may_take, _) in JOB_DEFECTS.items()],
)
def test_given_a_job_dynamodb_cannot_store_when_an_admin_creates_it_then_4xx_not_500(
    api: TestClient, tenant: Tenant, fields: dict[str, Any], field: str, may_take: bool
) -> None:
    body = {"tenant": tenant.id, "model": "m", "provider": {"type": "mock"}} | fields
    answer = api.post("/v1/jobs", headers=ADMIN_HEADERS, json=body)
    assert_taken_or_refused(answer, field, may_take=may_take)


# DynamoDB (not moto) refuses a key value over 2048 bytes with a ValidationException, on reads too.
DYNAMODB_MAX_KEY_BYTES = 2048
LONG_ID_REQUESTS = {  # method, url, whether the id goes in the body, the field named in the refusal
    "path id": ("GET", "/v1/files/file-{long}", False, "id"),
    "list cursor": ("GET", "/v1/batches?after=batch_{long}", False, "after"),
    "body id": ("POST", "/v1/batches", True, "input_file_id"),
}


@pytest.fixture
def dynamodb_key_limit(store: Any) -> None:
    """Make moto refuse over-long keys as DynamoDB does (moto takes them and finds nothing)."""

    def refuse(params: dict[str, Any], **_: Any) -> None:
        key = json.loads(params["body"] or b"{}").get("Key", {})
        if any(len(v.get("S", "").encode()) > DYNAMODB_MAX_KEY_BYTES for v in key.values()):
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Size of hashkey has exceeded the limit"}},
                "GetItem",
            )

    store._table.resource.meta.client.meta.events.register("before-call.dynamodb.GetItem", refuse)


@pytest.mark.parametrize(
    ("method", "url", "in_body", "field"), list(LONG_ID_REQUESTS.values()), ids=list(LONG_ID_REQUESTS)
)
def test_given_an_id_longer_than_a_dynamodb_key_when_looked_up_then_4xx_not_500(
    api: TestClient, tenant: Tenant, dynamodb_key_limit: None, method: str, url: str, in_body: bool, field: str
) -> None:
    long = "x" * (DYNAMODB_MAX_KEY_BYTES + 1)
    body = batch_body(long, tenant.job.id) if in_body else None
    answer = api.request(method, url.format(long=long), headers=tenant.headers, json=body)
    assert_taken_or_refused(answer, field, may_take=False)


def test_the_document_has_every_served_route_and_nothing_else() -> None:
    documented = {(method, path) for path, method, _ in OPERATIONS}
    assert documented == {r.key for r in ROUTES}


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_documented_error_status_has_the_openai_error_body(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    statuses = {int(s) for s in operation["responses"]}
    assert {401, 403, 422, 500} <= statuses
    if "{" in path:
        assert 404 in statuses
    for status in sorted(s for s in statuses if s >= 400):
        content = operation["responses"][str(status)]["content"]
        assert list(content) == ["application/json"], (status, content)
        body = resolve(content["application/json"]["schema"])
        assert body["required"] == ["error"] and set(body["properties"]) == {"error"}, status
        error = resolve(body["properties"]["error"])
        assert set(error["required"]) == {"message", "type", "param", "code"}, status
        assert set(error["properties"]["type"]["enum"]) == OPENAI_TYPES, status


def test_the_document_never_shows_the_frameworks_detail_body() -> None:
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    assert '"detail"' not in json.dumps(DOCUMENT)


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_operation_has_a_summary_a_description_and_the_bearer_key_scheme(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    assert operation.get("summary", "").strip()
    assert operation.get("description", "").strip()
    assert operation["security"] == [{"ApiKey": []}]
    scheme = DOCUMENT["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "authorization" not in {p["name"].lower() for p in operation.get("parameters", [])}


def enum_of(schema: dict[str, Any]) -> set[str]:
    """The enum of a schema, through `$ref` and a nullable `anyOf`."""
    schema = resolve(schema)
    options = [resolve(s) for s in schema.get("anyOf", [schema])]
    (enum,) = [o["enum"] for o in options if "enum" in o]
    return set(enum)


def test_purpose_is_an_enum_wherever_it_appears() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    upload_form = resolve(
        DOCUMENT["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    )
    (list_param,) = [p for p in DOCUMENT["paths"]["/v1/files"]["get"]["parameters"] if p["name"] == "purpose"]

    assert enum_of(upload_form["properties"]["purpose"]) == UPLOAD_PURPOSES
    assert enum_of(schemas["UploadCreate"]["properties"]["purpose"]) == UPLOAD_PURPOSES
    assert enum_of(list_param["schema"]) == FILE_PURPOSES
    assert enum_of(schemas["FileObject"]["properties"]["purpose"]) == FILE_PURPOSES


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_given_an_unexpected_fault_when_any_route_runs_then_500_with_the_openai_body_and_no_trace(
    api: TestClient, tenant: Tenant, route: Route
) -> None:
    # Ids that exist nowhere: the store fails before anyone could look them up.
    world = World(tenant, "file-x", "file-y", "batch_x", "upload_x", "part_x", "key_x")
    deps = sys.modules["routes.deps"]

    class BrokenStore:
        """Every use of the store fails the way a bug or an AWS fault would."""

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"secret internals: {name} at /var/task/batchline/store.py")

    api.app.dependency_overrides[deps.get_store] = BrokenStore  # type: ignore[attr-defined]
    headers = ADMIN_HEADERS if route.caller == "admin" else world.headers
    answer = api.request(**request_for(route, world), headers=headers)

    assert answer.status_code == 500, answer.text
    assert answer.json() == {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert not re.search(r"secret internals|Traceback|\.py", answer.text)


def has_example(schema: dict[str, Any]) -> bool:
    """The schema (or, for a list page, its items' schema) carries an example."""
    schema = resolve(schema)
    if "examples" in schema or "example" in schema:
        return True
    items = schema.get("properties", {}).get("data", {}).get("items")
    return items is not None and has_example(items)


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_operation_documents_an_example_of_its_answer_and_its_json_body(
    path: str, method: str, op: dict[str, Any]
) -> None:
    if path in ("/openapi.json", "/docs", "/redoc"):
        return
    answers = op["responses"].get("200", {}).get("content", {})
    assert answers, f"{method} {path} documents no 200 answer"
    assert any("example" in c or has_example(c.get("schema", {})) for c in answers.values()), (method, path)
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        assert has_example(body["schema"]), (method, path)
