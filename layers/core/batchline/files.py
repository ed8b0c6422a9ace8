"""Files: storing uploads and the rules on their size and lifetime."""

from __future__ import annotations

import time
from typing import IO

from batchline import ids
from batchline.errors import PayloadTooLarge
from batchline.layout import file_key
from batchline.models import MAX_FILE_BYTES, ExpiresAfter, FilePurpose, FileRecord, UploadPurpose
from batchline.store import Store

BATCH_FILE_DEFAULT_TTL = 30 * 24 * 3600


def too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"File of {size} bytes is over this route's limit of {limit} bytes. Larger files (up to "
        f"{MAX_FILE_BYTES} bytes) go in through the Uploads API (POST /v1/uploads, or the SDK's "
        f"client.uploads.upload_file_chunked(..., part_size={limit}) or smaller: its 64 MiB default is "
        "refused), a presigned PUT (POST /v1/uploads/{id}/presigned_url), or the S3 inbox "
        "(inbox/<job_id>/<name>.jsonl).",
        param="file",
        code="file_too_large",
    )


def new_record(
    tenant_id: str,
    *,
    filename: str,
    purpose: FilePurpose,
    size: int,
    expires_after: ExpiresAfter | None = None,
    file_id: str | None = None,
) -> FileRecord:
    """A File's record with the contract's expiry rules (`batch` files expire after 30 days by default)."""
    now = int(time.time())
    if expires_after is not None:
        expires_at: int | None = now + expires_after.seconds
    elif purpose == "batch":
        expires_at = now + BATCH_FILE_DEFAULT_TTL
    else:
        expires_at = None
    file_id = file_id or ids.file_id()
    return FileRecord(
        id=file_id,
        bytes=size,
        created_at=now,
        expires_at=expires_at,
        filename=filename,
        purpose=purpose,
        tenant_id=tenant_id,
        s3_key=file_key(tenant_id, file_id),
    )


def create_file(
    store: Store,
    tenant_id: str,
    *,
    filename: str,
    purpose: UploadPurpose,
    body: IO[bytes],
    size: int,
    max_bytes: int,
    expires_after: ExpiresAfter | None = None,
) -> FileRecord:
    """Store an upload's bytes, then its record: a record never points at missing bytes."""
    if size > max_bytes:
        raise too_large(size, max_bytes)
    record = new_record(tenant_id, filename=filename, purpose=purpose, size=size, expires_after=expires_after)
    store.objects.upload(record.s3_key, body)
    store.files.put(record)
    return record
