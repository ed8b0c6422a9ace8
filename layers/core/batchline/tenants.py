"""Tenants (projects): their first API key, and an admin's changes to their limits and default job."""

from __future__ import annotations

import time

from batchline import ids
from batchline.auth import Authenticator
from batchline.models import ApiKeyRecord, TenantRecord, TenantUpdate
from batchline.store import Store


def create_tenant(store: Store, auth: Authenticator, name: str) -> tuple[TenantRecord, ApiKeyRecord, str]:
    """A tenant with one API key; the key is returned this once and kept only as a hash."""
    tenant = TenantRecord(id=ids.tenant_id(), name=name, created_at=int(time.time()))
    store.tenants.put(tenant)
    record, key = auth.issue_key(tenant.id)
    return tenant, record, key


def update_tenant(store: Store, tenant_id: str, request: TenantUpdate) -> TenantRecord:
    """What the request gives replaces the tenant's; a default job must be one of the tenant's own."""
    fields = {}
    if "default_job_id" in request.model_fields_set:
        if request.default_job_id is not None:
            store.jobs.get(tenant_id, request.default_job_id, param="default_job_id")
        fields["default_job_id"] = request.default_job_id
    limits = request.limits.model_dump(exclude_unset=True) if request.limits is not None else None
    return store.tenants.update(tenant_id, limits=limits, fields=fields)
