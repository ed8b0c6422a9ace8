"""Files: storing uploads and the rules on their size and lifetime."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import IO

from batchline import ids
from batchline.data.objects import body_chunks
from batchline.errors import InvalidRequest, PayloadTooLarge, ServerError
from batchline.layout import file_key
from batchline.models import (
    MAX_FILE_BYTES,
    MAX_FILENAME_CHARS,
    ExpiresAfter,
    FilePurpose,
    FileRecord,
    UploadPurpose,
)
from batchline.observability import logger
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


def filename_too_long(param: str = "file") -> InvalidRequest:
    """The name of the file in the form field `param` is over the limit."""
    return InvalidRequest(
        f"Invalid '{param}': its filename is too long; a filename may be at most {MAX_FILENAME_CHARS} characters.",
        param=param,
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


def content(store: Store, record: FileRecord, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """A file's bytes, a chunk at a time, once its object is known to be the size its record says.

    They are answered under the record's Content-Length: an object of another size would break the answer
    off (or run past it) after its status was sent, which a client sees as a dropped connection. Checked
    before the first byte, it is an error the client can read instead.
    """
    body, size = store.objects.open_sized(record.s3_key)
    if size != record.bytes:
        body.close()
        logger.error(
            "File size differs from its record", extra={"file_id": record.id, "stored": size, "recorded": record.bytes}
        )
        raise ServerError(
            f"File {record.id} cannot be served: its stored content is {size} bytes, "
            f"but its record says {record.bytes} bytes."
        )
    return body_chunks(body, chunk_size)
