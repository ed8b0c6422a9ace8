"""FastAPI dependencies: configuration, the store and the caller, built on first use, not at import."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from batchline.auth import Authenticator, Principal
from batchline.config import ApiSettings
from batchline.errors import ErrorBody
from batchline.idempotency import Idempotency
from batchline.limits import RateLimiter
from batchline.models import Page
from batchline.runs import Runs
from batchline.secret_values import secrets_manager_getter
from batchline.store import Store


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()  # read from the environment


@lru_cache
def get_store() -> Store:
    return Store.for_settings(get_settings())


@lru_cache
def get_authenticator() -> Authenticator:
    settings = get_settings()
    return Authenticator(
        get_store().tenants,
        secrets_manager_getter(),
        admin_key_secret=settings.admin_key_secret,
        key_hash_secret=settings.key_hash_secret,
    )


@lru_cache
def get_runs() -> Runs:
    return Runs(get_settings().state_machine_arn)


@lru_cache
def get_idempotency() -> Idempotency:
    return Idempotency(get_settings().idempotency_table)


def get_rate_limiter(store: Annotated[Store, Depends(get_store)]) -> RateLimiter:
    return RateLimiter(store.rates)


# Documents the scheme in OpenAPI (`securitySchemes`); the Authenticator reads the header itself, so a
# missing or malformed key gets the contract's 401 body rather than the framework's.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer <key>`: a project API key, or the admin key on admin routes.",
)


def get_principal(
    authenticator: Annotated[Authenticator, Depends(get_authenticator)],
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    return authenticator.authenticate(authorization)


def get_tenant(
    request: Request,
    principal: Annotated[Principal, Depends(get_principal)],
    limiter: Annotated[RateLimiter, Depends(get_rate_limiter)],
    settings: Annotated[ApiSettings, Depends(get_settings)],
) -> str:
    """The caller's tenant, once its key's request is counted against its rate (429 beyond it)."""
    tenant_id = principal.require_tenant()
    assert principal.key_id is not None  # a tenant's principal is always one of its keys
    limit = principal.requests_per_second or settings.requests_per_second
    # The app's middleware puts the x-ratelimit-* headers on the answer, whatever the route answers.
    request.state.rate = limiter.hit(principal.key_id, limit)
    return tenant_id


def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    principal.require_admin()
    return principal


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
TenantId = Annotated[str, Depends(get_tenant)]
IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
RunsDep = Annotated[Runs, Depends(get_runs)]
# Lists page by the last id seen, as OpenAI's do (the SDK sends `after=<last_id>` until has_more is false).
After = Annotated[str | None, Query(description="The last id of the previous page.")]
PageSize = Annotated[int, Query(ge=1, le=100, description="How many objects a page holds.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=256,
        description="Replays with the same key answer the first result.",
    ),
]
Admin = Annotated[Principal, Depends(get_admin)]


def error_answer() -> dict[str, Any]:
    """The OpenAPI entry of an error status: OpenAI's error body, by reference to the document's schemas.

    Not `{"model": ErrorBody}`: FastAPI builds a pydantic serializer for each such entry of each route
    (over 150 at import, and a router's again when a request first reaches it) only to write the document.
    The app adds ErrorBody to the document's schemas itself (`error_schemas`).
    """
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def error_schemas() -> dict[str, Any]:
    """ErrorBody and what it holds, as the OpenAPI document's component schemas."""
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    return {**schema.pop("$defs"), "ErrorBody": schema}


# Tenant routes count against the key's request rate (get_tenant): each can answer 429.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {429: error_answer()}


def page[T: BaseModel](model: type[T], records: list[Any], has_more: bool) -> Page[T]:
    """OpenAI's list envelope over records shown as `model`."""
    data = [model.model_validate(r, from_attributes=True) for r in records]
    return Page[model](  # type: ignore[valid-type]
        data=data,
        first_id=data[0].id if data else None,  # type: ignore[attr-defined]
        last_id=data[-1].id if data else None,  # type: ignore[attr-defined]
        has_more=has_more,
    )


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer, besides the ones every route can.

    422 is always there: every route takes parameters, and a request that fails their validation (or whose
    body cannot be parsed) answers OpenAI's error body, not the framework's `{"detail": ...}`.
    """
    return {status: error_answer() for status in sorted({401, 403, 422, 500, *statuses})}
