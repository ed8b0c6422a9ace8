"""Uploads: OpenAI's Uploads API, for files larger than one request can carry (up to MAX_FILE_BYTES).

Each part is its own S3 object under `uploads/<tenant>/<upload>/parts/<part>`; a client that can PUT
directly sends the whole file to `uploads/<tenant>/<upload>/object` through a presigned URL instead.
Completion joins the parts, in the order the client names, into the File's object (data.assembly:
S3 copies the large parts itself), so the file is never held in memory.

Parts come through the api function, at most 4 MiB each, under S3's 5 MiB minimum for a part it copies:
joined only at completion, every byte of a 200 MB file would pass through one invocation within API
Gateway's 30 s. So each part is also joined, as it comes, to the chain of the parts before it (S3 copies
the chain, the function sends only the new part): completion in that order is one server-side copy.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import PurePath
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError

from batchline import files, ids, layout
from batchline.data.assembly import READ_CHUNK, Source, assemble
from batchline.data.objects import Changed
from batchline.errors import Conflict, InvalidRequest, PayloadTooLarge
from batchline.models import (
    MAX_FILE_BYTES,
    FileObject,
    FileRecord,
    PresignedUpload,
    UploadChain,
    UploadComplete,
    UploadCreate,
    UploadObject,
    UploadPartObject,
    UploadRecord,
)
from batchline.observability import logger
from batchline.store import Store

# OpenAI's lifetime of an Upload.
UPLOAD_TTL_SECONDS = 3600
PRESIGNED_URL_TTL_SECONDS = 900
_PART_ID = re.compile(r"part_[A-Za-z0-9]{1,64}")
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
# A chain names its parts on the upload's item (about 30 bytes each): bounded well under DynamoDB's 400 KB.
MAX_CHAINED_PARTS = 2000
# A failed If-Match means a staged object was PUT again meanwhile: a conflict, not our fault.
_CHANGED = "A staged part changed while the upload was completing; complete it again."


def _now() -> int:
    return int(time.time())


def get_upload(store: Store, tenant_id: str, upload_id: str) -> UploadRecord:
    return store.uploads.get(tenant_id, upload_id)


def _require_pending(upload: UploadRecord, now: int) -> None:
    if upload.status != "pending":
        raise Conflict(f"Upload {upload.id} is already {upload.status}.")
    if upload.expired(now):
        raise Conflict(f"Upload {upload.id} expired at {upload.expires_at}; create a new upload.")


def create_upload(store: Store, tenant_id: str, request: UploadCreate) -> UploadObject:
    """A pending Upload that takes parts for the next hour."""
    if request.bytes > MAX_FILE_BYTES:
        raise PayloadTooLarge(
            f"An upload of {request.bytes} bytes is over the limit of {MAX_FILE_BYTES} bytes (200 MB) per file.",
            param="bytes",
            code="file_too_large",
        )
    now = _now()
    record = UploadRecord(
        id=ids.upload_id(),
        bytes=request.bytes,
        created_at=now,
        expires_at=now + UPLOAD_TTL_SECONDS,
        filename=PurePath(request.filename).name or request.filename,
        purpose=request.purpose,
        status="pending",
        tenant_id=tenant_id,
        mime_type=request.mime_type,
        expires_after=request.expires_after,
    )
    store.uploads.put(record)
    return record.view(now)


def add_part(
    store: Store, tenant_id: str, upload_id: str, body: IO[bytes], *, size: int, max_bytes: int
) -> UploadPartObject:
    """Store one part as its own object; the client orders the parts when it completes."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"A part of {size} bytes is over this route's limit of {max_bytes} bytes per part; send "
            f"smaller parts (the SDK's upload_file_chunked(..., part_size={max_bytes}) or smaller), PUT the "
            f"whole file to a presigned URL (POST /v1/uploads/{upload_id}/presigned_url), or put it in the "
            "S3 inbox (inbox/<job_id>/<name>.jsonl).",
            param="data",
            code="part_too_large",
        )
    _require_pending(upload, now)
    part = UploadPartObject(id=ids.part_id(), created_at=now, upload_id=upload.id)
    key = layout.upload_part_key(tenant_id, upload.id, part.id)
    store.objects.upload(key, body)
    _chain(store, upload, part.id, Source(key, size, None))
    return part


def _chain(store: Store, upload: UploadRecord, part_id: str, part: Source) -> None:
    """Join the part to the chain of the parts before it; best effort, as completion can always join them."""
    before = upload.chain
    if before is None:
        chain = UploadChain(parts=[part_id], key=part.key, bytes=part.size)  # the part is the chain
    elif len(before.parts) >= MAX_CHAINED_PARTS:
        return
    else:
        key = layout.upload_chain_key(upload.tenant_id, upload.id, len(before.parts) + 1)
        try:
            assemble(store.objects, [Source(before.key, before.bytes, None), part], key, content_type=upload.mime_type)
        except (BotoCoreError, ClientError, Changed):
            logger.warning("Could not extend the upload's chain", extra={"upload_id": upload.id}, exc_info=True)
            return
        chain = UploadChain(parts=[*before.parts, part_id], key=key, bytes=before.bytes + part.size)
    if not store.uploads.extend_chain(upload.id, before, chain):
        # Another part came at the same time and extended it first: this one is joined at completion.
        if chain.key != part.key:
            store.objects.delete_quietly([chain.key])
        return
    if before is not None and len(before.parts) > 1:
        store.objects.delete_quietly([before.key])  # an earlier join (not a part), which no completion will use


def cancel_upload(store: Store, tenant_id: str, upload_id: str) -> UploadObject:
    """pending -> cancelled, and its parts are deleted; cancelling again answers the same upload."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    # The SDK retries a lost answer: a second cancel is the same request, not an illegal change.
    if upload.status == "cancelled":
        return upload.view(now)
    if upload.status != "pending":
        raise Conflict(f"Upload {upload.id} is {upload.status}; only a pending upload can be cancelled.")
    cancelled = store.uploads.cancel(upload.id)
    _delete_staged(store, upload)
    return cancelled.view(now)


def presign_put(
    store: Store, tenant_id: str, upload_id: str, *, ttl: int = PRESIGNED_URL_TTL_SECONDS
) -> PresignedUpload:
    """A URL to PUT exactly the declared bytes to, instead of sending parts."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    _require_pending(upload, now)
    expires_in = max(1, min(ttl, upload.expires_at - now))
    url = store.objects.presign_put(
        layout.upload_object_key(tenant_id, upload.id), content_length=upload.bytes, expires_in=expires_in
    )
    return PresignedUpload(url=url, headers={"Content-Length": str(upload.bytes)}, expires_at=now + expires_in)


def complete_upload(store: Store, tenant_id: str, upload_id: str, request: UploadComplete) -> UploadObject:
    """Join the parts (or the presigned PUT's object) into a File; pending -> completed."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    _require_pending(upload, now)
    chain = upload.chain
    if chain is not None and chain.parts == request.part_ids and chain.bytes == upload.bytes:
        # The parts in the order they came: joined already, one server-side copy makes the File.
        sources = [Source(chain.key, chain.bytes, None)]
    else:
        sources = _sources(store, upload, request.part_ids)
    total = sum(s.size for s in sources)
    if total != upload.bytes:
        got = f"The parts add up to {total}" if request.part_ids else f"The object PUT has {total}"
        raise InvalidRequest(
            f"{got} bytes, but upload {upload.id} was created for {upload.bytes} bytes.", param="part_ids"
        )
    if request.md5 is not None:
        _check_md5(store, sources, request.md5)

    record = files.new_record(
        tenant_id,
        filename=upload.filename,
        purpose=upload.purpose,
        size=total,
        expires_after=upload.expires_after,
    )
    try:
        assemble(store.objects, sources, record.s3_key, content_type=upload.mime_type)
    except Changed as exc:
        raise Conflict(_CHANGED) from exc
    file = FileObject.model_validate(record.model_dump(include=set(FileObject.model_fields)))
    try:
        completed = store.uploads.complete(upload.id, file, now=now)
    except Conflict:
        store.objects.delete_quietly([record.s3_key])
        raise
    _register(store, upload, record)
    _delete_staged(store, upload)
    return completed.view(now)


def _register(store: Store, upload: UploadRecord, record: FileRecord) -> None:
    """The File's record, after the upload's completion claimed it; undo the claim if it cannot be kept."""
    try:
        store.files.put(record)
    except Exception:
        # Without its record the completed upload would point at a File nobody can read: back to pending
        # so the client can complete again.
        store.uploads.reopen(upload.id, record.id)
        store.objects.delete_quietly([record.s3_key])
        raise


# ------------------------------------------------------------------------------------------ sources


def _sources(store: Store, upload: UploadRecord, part_ids: list[str]) -> list[Source]:
    """The staged objects named by `part_ids` (or the presigned PUT's object when it is empty)."""
    if not part_ids:
        key = layout.upload_object_key(upload.tenant_id, upload.id)
        put = store.objects.first(key)
        if put is None or put["Key"] != key:
            raise InvalidRequest(
                f"Upload {upload.id} has no parts given and nothing was PUT to its presigned URL.",
                param="part_ids",
            )
        return [Source(key, put["Size"], put["ETag"])]

    seen: set[str] = set()
    for part_id in part_ids:
        if part_id in seen:
            raise InvalidRequest(f"Part {part_id} is listed twice.", param="part_ids")
        seen.add(part_id)
    staged = _staged_parts(store, upload)
    sources = []
    for part_id in part_ids:
        found = staged.get(part_id) if _PART_ID.fullmatch(part_id) else None
        if found is None:
            raise InvalidRequest(f"No such part in upload {upload.id}: {part_id}", param="part_ids")
        sources.append(found)
    return sources


def _staged_parts(store: Store, upload: UploadRecord) -> dict[str, Source]:
    """The upload's parts by id, from one listing rather than a request per part."""
    prefix = layout.upload_part_key(upload.tenant_id, upload.id, "")
    return {
        obj["Key"].removeprefix(prefix): Source(obj["Key"], obj["Size"], obj["ETag"])
        for obj in store.objects.list_prefix(prefix)
    }


def _check_md5(store: Store, sources: list[Source], expected: str) -> None:
    """Stream the staged bytes in order through MD5: a pass over the data only when the client asks."""
    if not _MD5.fullmatch(expected):
        raise InvalidRequest("md5 must be 32 hexadecimal digits.", param="md5")
    digest = hashlib.md5(usedforsecurity=False)
    for source in sources:
        if source.size == 0:
            continue
        try:
            body = store.objects.read_range(source.key, 0, source.size, if_match=source.etag)
        except Changed as exc:
            raise Conflict(_CHANGED) from exc
        try:
            for chunk in body.iter_chunks(READ_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
    if digest.hexdigest() != expected.lower():
        raise InvalidRequest(
            f"md5 {expected} does not match the uploaded bytes (md5 {digest.hexdigest()}).", param="md5"
        )


# ------------------------------------------------------------------------------------------ cleanup


def _delete_staged(store: Store, upload: UploadRecord) -> None:
    """Delete the upload's parts and presigned object once they are joined or abandoned."""
    try:
        keys = [obj["Key"] for obj in store.objects.list_prefix(layout.upload_prefix(upload.tenant_id, upload.id))]
    except (BotoCoreError, ClientError):
        logger.warning("Could not list staged parts", extra={"upload_id": upload.id}, exc_info=True)
        return
    store.objects.delete_quietly(keys)
