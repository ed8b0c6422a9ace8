"""Upload records: a pending upload is completed or cancelled once, by a conditional status change."""

from __future__ import annotations

from batchline.data import conditions
from batchline.data.table import Table
from batchline.errors import Conflict
from batchline.models import FileObject, UploadChain, UploadRecord


class Uploads:
    """Upload records in the table, listed under their tenant."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def put(self, record: UploadRecord) -> None:
        self._table.put_new("upload", record, owner=record.tenant_id)

    def get(self, tenant_id: str, upload_id: str) -> UploadRecord:
        return UploadRecord.model_validate(self._table.get_owned("upload", tenant_id, upload_id))

    def cancel(self, upload_id: str) -> UploadRecord:
        """pending -> cancelled; Conflict if it was completed or cancelled meanwhile."""
        item = self._table.update(
            "upload",
            upload_id,
            set_={"status": "cancelled"},
            condition=conditions.Attr("status").eq("pending"),
            conflict=f"Upload {upload_id} was completed or cancelled meanwhile.",
        )
        return UploadRecord.model_validate(item)

    def complete(self, upload_id: str, file: FileObject, *, now: int) -> UploadRecord:
        """pending -> completed with its File; Conflict if it changed meanwhile or expired before `now`."""
        item = self._table.update(
            "upload",
            upload_id,
            set_={"status": "completed", "file": file.model_dump(mode="json")},
            # Started before expiry is good enough: joining 200 MB may take a while.
            condition=conditions.Attr("status").eq("pending") & conditions.Attr("expires_at").gt(now),
            conflict=f"Upload {upload_id} was completed or cancelled meanwhile.",
        )
        return UploadRecord.model_validate(item)

    def extend_chain(self, upload_id: str, before: UploadChain | None, chain: UploadChain) -> bool:
        """Record `chain` if the upload is pending and its chain is still `before`; False if another part's
        extension (or the completion) came first."""
        if before is None:
            unchanged = conditions.Attr("chain").not_exists() | conditions.Attr("chain").eq(None)
        else:
            unchanged = conditions.Attr("chain.key").eq(before.key)
        try:
            self._table.update(
                "upload",
                upload_id,
                set_={"chain": chain.model_dump(mode="json")},
                condition=conditions.Attr("status").eq("pending") & unchanged,
            )
        except Conflict:
            return False
        return True

    def reopen(self, upload_id: str, file_id: str) -> None:
        """completed -> pending again, when the File it claimed could not be recorded."""
        self._table.update(
            "upload",
            upload_id,
            set_={"status": "pending", "file": None},
            condition=conditions.Attr("status").eq("completed") & conditions.Attr("file.id").eq(file_id),
        )
