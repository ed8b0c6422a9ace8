"""/v1/admin: tenants and their API keys (admin key only)."""

from __future__ import annotations

from fastapi import APIRouter

from batchline import tenants
from batchline.models import (
    ApiKeyObject,
    ApiKeyRecord,
    Deleted,
    Page,
    TenantCreate,
    TenantCreated,
    TenantRecord,
    TenantUpdate,
)
from batchline.tenants import create_tenant
from routes.deferred import DeferredRoute
from routes.deps import Admin, After, AuthenticatorDep, PageSize, StoreDep, errors, page

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=DeferredRoute)


def _shown(record: ApiKeyRecord, key: str | None = None) -> ApiKeyObject:
    return ApiKeyObject(id=record.id, tenant_id=record.tenant_id, created_at=record.created_at, key=key)


@router.post("/tenants", response_model=TenantCreated, responses=errors(422))
def create(body: TenantCreate, _: Admin, store: StoreDep, auth: AuthenticatorDep) -> TenantCreated:
    """A tenant (project) and its first API key, shown this once."""
    tenant, record, key = create_tenant(store, auth, body.name)
    return TenantCreated(**tenant.model_dump(), api_key=_shown(record, key))


@router.get("/tenants", response_model=Page[TenantRecord], responses=errors(422))
def list_tenants(
    _: Admin,
    store: StoreDep,
    after: After = None,
    limit: PageSize = 20,
) -> Page[TenantRecord]:
    """Every tenant, newest first."""
    records, more = store.tenants.page(after=after, limit=limit)
    return page(TenantRecord, records, more)


@router.patch("/tenants/{tenant_id}", response_model=TenantRecord, responses=errors(404, 422))
def update_tenant(
    tenant_id: str, body: TenantUpdate, _: Admin, store: StoreDep, auth: AuthenticatorDep
) -> TenantRecord:
    """Set a tenant's own limits (null: back to the stack's default) and its default job (null: none)."""
    tenant = tenants.update_tenant(store, tenant_id, body)
    auth.forget_tenant(tenant_id)  # other containers see the new rate once their cached key expires
    return tenant


@router.post("/tenants/{tenant_id}/api_keys", response_model=ApiKeyObject, responses=errors(404))
def create_key(tenant_id: str, _: Admin, store: StoreDep, auth: AuthenticatorDep) -> ApiKeyObject:
    """Another key for a tenant, shown this once."""
    store.tenants.get(tenant_id)
    record, key = auth.issue_key(tenant_id)
    return _shown(record, key)


@router.get("/tenants/{tenant_id}/api_keys", response_model=Page[ApiKeyObject], responses=errors(404, 422))
def list_keys(
    tenant_id: str,
    _: Admin,
    store: StoreDep,
    after: After = None,
    limit: PageSize = 20,
) -> Page[ApiKeyObject]:
    """A tenant's keys, without the keys themselves."""
    store.tenants.get(tenant_id)
    records, more = store.tenants.list_api_keys(tenant_id, after=after, limit=limit)
    return page(ApiKeyObject, [_shown(r) for r in records], more)


@router.delete("/api_keys/{key_id}", response_model=Deleted, responses=errors(404))
def revoke_key(key_id: str, _: Admin, store: StoreDep, auth: AuthenticatorDep) -> Deleted:
    """Revoke a key: it answers 401 from now on."""
    store.tenants.delete_api_key(key_id)
    auth.forget(key_id)
    return Deleted(id=key_id, object="api_key")
