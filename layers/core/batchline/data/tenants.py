"""Tenant records and their API keys: a key is found by its hash, through a look-up item written with it."""

from __future__ import annotations

from typing import Any

from batchline.data.items import ADMIN_OWNER
from batchline.data.table import Table
from batchline.errors import Conflict, NotFound
from batchline.models import ApiKeyRecord, TenantRecord


def _hash_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"keyhash#{key_hash}", "sk": "keyhash"}


class Tenants:
    """Tenants (listed under the admin) and their keys (listed under their tenant)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def put(self, tenant: TenantRecord) -> None:
        self._table.put_new("tenant", tenant, owner=ADMIN_OWNER)

    def get(self, tenant_id: str, *, param: str = "id") -> TenantRecord:
        item = self._table.get("tenant", tenant_id)
        if item is None:
            raise NotFound(f"No such Tenant object: {tenant_id}", param=param)
        return TenantRecord.model_validate(item)

    def update(
        self, tenant_id: str, *, limits: dict[str, int | None] | None = None, fields: dict[str, Any] | None = None
    ) -> TenantRecord:
        """Replace the limits named in `limits` (None: back to the stack's default) and set `fields`; the
        others stay."""
        tenant = self.get(tenant_id)
        set_ = dict(fields or {})
        if limits:
            set_["limits"] = tenant.limits.model_copy(update=limits).model_dump()
        if not set_:
            return tenant
        item = self._table.update(
            "tenant",
            tenant_id,
            set_=set_,
            conflict=NotFound(f"No such Tenant object: {tenant_id}", param="tenant_id"),
        )
        return TenantRecord.model_validate(item)

    def page(self, *, after: str | None, limit: int) -> tuple[list[TenantRecord], bool]:
        items, more = self._table.list_owned("tenant", ADMIN_OWNER, after=after, limit=limit, newest_first=True)
        return [TenantRecord.model_validate(i) for i in items], more

    # ------------------------------------------------------------------------------------ API keys

    def put_api_key(self, key: ApiKeyRecord) -> None:
        """The key item (listed under its tenant) and its hash look-up item, together or not at all."""
        key_item = self._table.item("key", key, owner=key.tenant_id)
        hash_item: dict[str, Any] = {**_hash_key(key.key_hash), "key_id": key.id, "tenant_id": key.tenant_id}
        new = "attribute_not_exists(pk)"
        outcome = (
            self._table.transaction().put("key", key_item, condition=new).put("hash", hash_item, condition=new).write()
        )
        if not outcome.written:
            raise Conflict(f"API key {key.id} already exists.")

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key whose hash this is, if it exists and is not revoked."""
        found = self._table.get_key(_hash_key(key_hash), consistent=True)
        if found is None:
            return None
        item = self._table.get("key", found["key_id"])
        return ApiKeyRecord.model_validate(item) if item else None

    def list_api_keys(self, tenant_id: str, *, after: str | None, limit: int) -> tuple[list[ApiKeyRecord], bool]:
        items, more = self._table.list_owned("key", tenant_id, after=after, limit=limit, newest_first=True)
        return [ApiKeyRecord.model_validate(i) for i in items], more

    def delete_api_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key: its record and its hash look-up go together."""
        item = self._table.get("key", key_id)
        if item is None:
            raise NotFound(f"No such API key object: {key_id}", param="key_id")
        record = ApiKeyRecord.model_validate(item)
        outcome = (
            self._table.transaction()
            .delete("key", {"pk": key_id, "sk": "key"}, condition="attribute_exists(pk)")
            .delete("hash", _hash_key(record.key_hash))
            .write()
        )
        if not outcome.written:
            raise NotFound(f"No such API key object: {key_id}", param="key_id")  # revoked meanwhile
        return record
