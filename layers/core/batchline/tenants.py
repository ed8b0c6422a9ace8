"""Tenants (projects) and their first API key."""

from __future__ import annotations

import time

from batchline import ids
from batchline.auth import Authenticator
from batchline.models import ApiKeyRecord, TenantRecord
from batchline.store import Store


def create_tenant(store: Store, auth: Authenticator, name: str) -> tuple[TenantRecord, ApiKeyRecord, str]:
    """A tenant with one API key; the key is returned this once and kept only as a hash."""
    tenant = TenantRecord(id=ids.tenant_id(), name=name, created_at=int(time.time()))
    store.tenants.put(tenant)
    record, key = auth.issue_key(tenant.id)
    return tenant, record, key
