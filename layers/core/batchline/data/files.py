"""File records: a tenant's files, live until they expire, deletable only while no running batch reads them."""

from __future__ import annotations

import time

from batchline.data import conditions
from batchline.data.items import TTL_ATTR
from batchline.data.objects import Objects
from batchline.data.table import Table
from batchline.errors import NotFound
from batchline.models import FileRecord


class Files:
    """File records in the table; deleting one deletes its bytes too."""

    def __init__(self, table: Table, objects: Objects) -> None:
        self._table = table
        self._objects = objects

    def put(self, record: FileRecord) -> None:
        self._table.put_new("file", record, owner=record.tenant_id)

    def get(self, tenant_id: str, file_id: str, *, param: str = "id") -> FileRecord:
        """A tenant's file; an expired one is gone, whether or not TTL has removed it yet."""
        record = FileRecord.model_validate(self._table.get_owned("file", tenant_id, file_id, param=param))
        if record.expires_at is not None and record.expires_at <= time.time():
            raise NotFound(f"No such File object: {file_id}", param=param)
        return record

    def page(
        self, tenant_id: str, *, after: str | None, limit: int, newest_first: bool, purpose: str | None
    ) -> tuple[list[FileRecord], bool]:
        """One page of a tenant's live files (of one purpose, if given) and whether more follow."""
        live = conditions.Attr("expires_at").attribute_type("NULL") | conditions.Attr("expires_at").gt(int(time.time()))
        filter_ = live & conditions.Attr("purpose").eq(purpose) if purpose else live
        items, more = self._table.list_owned(
            "file", tenant_id, after=after, limit=limit, newest_first=newest_first, filter_=filter_
        )
        return [FileRecord.model_validate(i) for i in items], more

    def delete(self, tenant_id: str, file_id: str) -> FileRecord:
        """Delete a file's record, then its bytes; refused while a running batch uses it."""
        record = self.get(tenant_id, file_id)
        unused = conditions.Attr("in_use").not_exists() | conditions.Attr("in_use").lte(0)
        self._table.delete(
            "file",
            file_id,
            condition=conditions.Attr("tenant_id").eq(tenant_id) & unused,
            conflict=f"File {file_id} is the input of a batch that is still running.",
        )
        self._objects.delete(record.s3_key)
        return record

    def restore_expiry(self, file_id: str) -> None:
        """Give a file its TTL back once no batch uses it (safe to repeat; a no-op while one still does).

        A file past its expiry is then removed by TTL, and its bytes by the sweeper, as any other.
        """
        self._table.update_if(
            {"pk": file_id, "sk": "file"},
            "SET #ttl = expires_at",
            conditions.Attr("pk").exists()
            & (conditions.Attr("in_use").not_exists() | conditions.Attr("in_use").lte(0))
            & conditions.Attr(TTL_ATTR).not_exists()
            & conditions.Attr("expires_at").attribute_type("N"),
            {"#ttl": TTL_ATTR},
        )
