"""Uploads: OpenAI's Uploads API, for files larger than one request can carry (up to files.MAX_FILE_BYTES).

Each part is its own S3 object under `uploads/<tenant>/<upload>/parts/<part>`; a client that can PUT
directly sends the whole file to `uploads/<tenant>/<upload>/object` through a presigned URL instead.
Completion joins the parts, in the order the client names, into the File's object with an S3 multipart
upload: S3 copies the large parts itself and only small ones pass through the function, a piece at a time,
so the file is never held in memory.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import IO, Any, Literal, NoReturn

import boto3
from boto3.dynamodb.conditions import Attr
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from batchline import files, ids, layout
from batchline.errors import Conflict, InvalidRequest, PayloadTooLarge
from batchline.models import ExpiresAfter, FileObject, FileRecord, Strict, UploadPurpose
from batchline.observability import logger
from batchline.store import S3_CONFIG, Store

# OpenAI's lifetime of an Upload.
UPLOAD_TTL_SECONDS = 3600
PRESIGNED_URL_TTL_SECONDS = 900
# S3 refuses a multipart part under 5 MiB unless it is the last one.
S3_MIN_PART_BYTES = 5 * 1024 * 1024
# What the function buffers of small parts before sending it on as one multipart part.
PIECE_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_PART_ID = re.compile(r"part_[A-Za-z0-9]{1,64}")
_MD5 = re.compile(r"[0-9a-fA-F]{32}")

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


# ------------------------------------------------------------------------------------------- models


class UploadCreate(Strict):
    """Body of POST /v1/uploads."""

    bytes: int = Field(gt=0, description=f"Size of the whole file; at most {files.MAX_FILE_BYTES} bytes.")
    filename: str = Field(min_length=1, max_length=512)
    mime_type: str = Field(min_length=1, max_length=255, description="E.g. `application/jsonl`.")
    purpose: UploadPurpose = Field(description="The File's purpose; `batch` is the one Batchline processes.")
    expires_after: ExpiresAfter | None = Field(default=None, description="Expiry policy of the File.")


class UploadComplete(Strict):
    """Body of POST /v1/uploads/{id}/complete."""

    part_ids: list[str] = Field(
        max_length=10_000,
        description="The parts in file order; empty to register what was PUT to the presigned URL.",
    )
    md5: str | None = Field(default=None, description="Hex MD5 of the whole file, checked when given.")


class UploadObject(BaseModel):
    """OpenAI's Upload object."""

    id: str = Field(description="`upload_…`")
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: UploadPurpose
    status: UploadStatus
    file: FileObject | None = Field(default=None, description="The File, once the upload is completed.")


class UploadRecord(UploadObject):
    """An Upload as kept in DynamoDB; its status stays `pending` after expiry, shown as `expired`."""

    tenant_id: str
    mime_type: str
    expires_after: ExpiresAfter | None = None

    def view(self, now: int) -> UploadObject:
        """The object as the client sees it at `now`."""
        status: UploadStatus = "expired" if self.expired(now) else self.status
        return UploadObject.model_validate(self.model_dump(include=set(UploadObject.model_fields)) | {"status": status})

    def expired(self, now: int) -> bool:
        return self.status == "pending" and now >= self.expires_at


class UploadPartObject(BaseModel):
    """OpenAI's Upload Part object."""

    id: str = Field(description="`part_…`")
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


class PresignedUpload(BaseModel):
    """Where and how to PUT the whole file directly to S3."""

    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="Headers the PUT must carry (they are signed).")
    expires_at: int = Field(description="The URL works until then.")


# --------------------------------------------------------------------------------------- operations


def _now() -> int:
    return int(time.time())


def get_upload(store: Store, tenant_id: str, upload_id: str) -> UploadRecord:
    return UploadRecord.model_validate(store.get_owned("upload", tenant_id, upload_id))


def _require_pending(upload: UploadRecord, now: int) -> None:
    if upload.status != "pending":
        raise Conflict(f"Upload {upload.id} is already {upload.status}.")
    if upload.expired(now):
        raise Conflict(f"Upload {upload.id} expired at {upload.expires_at}; create a new upload.")


def create_upload(store: Store, tenant_id: str, request: UploadCreate) -> UploadObject:
    """A pending Upload that takes parts for the next hour."""
    if request.bytes > files.MAX_FILE_BYTES:
        raise PayloadTooLarge(
            f"An upload of {request.bytes} bytes is over the limit of {files.MAX_FILE_BYTES} bytes (200 MB) per file.",
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
    store.put_new("upload", record, owner=tenant_id)
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
    store.upload(layout.upload_part_key(tenant_id, upload.id, part.id), body)
    return part


def cancel_upload(store: Store, tenant_id: str, upload_id: str) -> UploadObject:
    """pending -> cancelled, and its parts are deleted; cancelling again answers the same upload."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    # The SDK retries a lost answer: a second cancel is the same request, not an illegal change.
    if upload.status == "cancelled":
        return upload.view(now)
    if upload.status != "pending":
        raise Conflict(f"Upload {upload.id} is {upload.status}; only a pending upload can be cancelled.")
    item = store.update(
        "upload",
        upload.id,
        set_={"status": "cancelled"},
        condition=Attr("status").eq("pending"),
        conflict=f"Upload {upload.id} was completed or cancelled meanwhile.",
    )
    _delete_staged(store, upload)
    return UploadRecord.model_validate(item).view(now)


def presign_put(
    store: Store, tenant_id: str, upload_id: str, *, ttl: int = PRESIGNED_URL_TTL_SECONDS
) -> PresignedUpload:
    """A URL to PUT exactly the declared bytes to, instead of sending parts."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    _require_pending(upload, now)
    expires_in = max(1, min(ttl, upload.expires_at - now))
    url = _presigner(store.s3.meta.region_name, store.s3.meta.endpoint_url).generate_presigned_url(
        "put_object",
        Params={
            "Bucket": store.bucket_name,
            "Key": layout.upload_object_key(tenant_id, upload.id),
            "ContentLength": upload.bytes,
        },
        ExpiresIn=expires_in,
    )
    return PresignedUpload(url=url, headers={"Content-Length": str(upload.bytes)}, expires_at=now + expires_in)


@lru_cache(maxsize=8)
def _presigner(region: str | None, endpoint_url: str | None) -> Any:
    # SigV4 signs Content-Length, so S3 itself refuses a PUT of another size (complete checks it too).
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=S3_CONFIG)


def complete_upload(store: Store, tenant_id: str, upload_id: str, request: UploadComplete) -> UploadObject:
    """Join the parts (or the presigned PUT's object) into a File; pending -> completed."""
    now = _now()
    upload = get_upload(store, tenant_id, upload_id)
    _require_pending(upload, now)
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
    _assemble(store, sources, record.s3_key, content_type=upload.mime_type)
    file = FileObject.model_validate(record.model_dump(include=set(FileObject.model_fields)))
    try:
        item = store.update(
            "upload",
            upload.id,
            set_={"status": "completed", "file": file.model_dump(mode="json")},
            # Started before expiry is good enough: joining 200 MB may take a while.
            condition=Attr("status").eq("pending") & Attr("expires_at").gt(now),
            conflict=f"Upload {upload.id} was completed or cancelled meanwhile.",
        )
    except Conflict:
        _delete_quietly(store, [record.s3_key])
        raise
    _register(store, upload, record)
    _delete_staged(store, upload)
    return UploadRecord.model_validate(item).view(now)


def _register(store: Store, upload: UploadRecord, record: FileRecord) -> None:
    """The File's record, after the upload's completion claimed it; undo the claim if it cannot be kept."""
    try:
        store.put_file(record)
    except Exception:
        # Without its record the completed upload would point at a File nobody can read: back to pending
        # so the client can complete again.
        store.update(
            "upload",
            upload.id,
            set_={"status": "pending", "file": None},
            condition=Attr("status").eq("completed") & Attr("file.id").eq(record.id),
        )
        _delete_quietly(store, [record.s3_key])
        raise


# ------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class _Source:
    """One staged object, in file order."""

    key: str
    size: int
    etag: str


def _sources(store: Store, upload: UploadRecord, part_ids: list[str]) -> list[_Source]:
    """The staged objects named by `part_ids` (or the presigned PUT's object when it is empty)."""
    if not part_ids:
        key = layout.upload_object_key(upload.tenant_id, upload.id)
        # A listing, not a HEAD: S3 answers a HEAD of a missing key with 403 to a role that may list only
        # uploads/, which cannot be told from a real denial; the listing says "absent" plainly.
        listed = store.s3.list_objects_v2(Bucket=store.bucket_name, Prefix=key, MaxKeys=1).get("Contents", [])
        put = next((obj for obj in listed if obj["Key"] == key), None)
        if put is None:
            raise InvalidRequest(
                f"Upload {upload.id} has no parts given and nothing was PUT to its presigned URL.",
                param="part_ids",
            )
        return [_Source(key, put["Size"], put["ETag"])]

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


def _staged_parts(store: Store, upload: UploadRecord) -> dict[str, _Source]:
    """The upload's parts by id, from one listing rather than a request per part."""
    prefix = layout.upload_part_key(upload.tenant_id, upload.id, "")
    found: dict[str, _Source] = {}
    for page in store.s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket_name, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"].removeprefix(prefix)] = _Source(obj["Key"], obj["Size"], obj["ETag"])
    return found


def _read(store: Store, source: _Source, start: int, length: int) -> Any:
    """A ranged GET of the staged object as it was listed (a re-PUT meanwhile is a conflict)."""
    try:
        answer = store.s3.get_object(
            Bucket=store.bucket_name,
            Key=source.key,
            Range=f"bytes={start}-{start + length - 1}",
            IfMatch=source.etag,
        )
    except ClientError as exc:
        _reraise(exc)
    return answer["Body"]


def _reraise(exc: ClientError) -> NoReturn:
    """A failed If-Match means a staged object was PUT again meanwhile: a conflict, not our fault."""
    if exc.response["Error"]["Code"] in ("PreconditionFailed", "412"):
        raise Conflict("A staged part changed while the upload was completing; complete it again.") from exc
    raise exc


def _check_md5(store: Store, sources: list[_Source], expected: str) -> None:
    """Stream the staged bytes in order through MD5: a pass over the data only when the client asks."""
    if not _MD5.fullmatch(expected):
        raise InvalidRequest("md5 must be 32 hexadecimal digits.", param="md5")
    digest = hashlib.md5(usedforsecurity=False)
    for source in sources:
        if source.size == 0:
            continue
        body = _read(store, source, 0, source.size)
        try:
            for chunk in body.iter_chunks(_READ_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
    if digest.hexdigest() != expected.lower():
        raise InvalidRequest(
            f"md5 {expected} does not match the uploaded bytes (md5 {digest.hexdigest()}).", param="md5"
        )


# ----------------------------------------------------------------------------------------- assembly


@dataclass
class _Writer:
    """The destination object: a single put when everything fit in one piece, else an S3 multipart upload."""

    store: Store
    key: str
    content_type: str
    buffer: bytearray = field(default_factory=bytearray)
    _upload_id: str | None = None
    _parts: list[dict[str, Any]] = field(default_factory=list)

    def _multipart(self) -> str:
        if self._upload_id is None:
            self._upload_id = self.store.s3.create_multipart_upload(
                Bucket=self.store.bucket_name, Key=self.key, ContentType=self.content_type
            )["UploadId"]
        return self._upload_id

    def copy(self, source: _Source, start: int, end: int) -> None:
        """S3 copies bytes [start, end) of the source as the next part; none pass through here."""
        upload_id = self._multipart()
        number = len(self._parts) + 1
        try:
            answer = self.store.s3.upload_part_copy(
                Bucket=self.store.bucket_name,
                Key=self.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.store.bucket_name, "Key": source.key},
                CopySourceRange=f"bytes={start}-{end - 1}",
                CopySourceIfMatch=source.etag,
            )
        except ClientError as exc:
            _reraise(exc)
        self._parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})

    def take(self, source: _Source, start: int, length: int) -> None:
        body = _read(self.store, source, start, length)
        try:
            for chunk in body.iter_chunks(_READ_CHUNK):
                self.buffer += chunk
        finally:
            body.close()

    def flush(self) -> None:
        upload_id = self._multipart()
        number = len(self._parts) + 1
        answer = self.store.s3.upload_part(
            Bucket=self.store.bucket_name,
            Key=self.key,
            UploadId=upload_id,
            PartNumber=number,
            Body=bytes(self.buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self.buffer.clear()

    def finish(self) -> None:
        if self._upload_id is None:
            self.store.s3.put_object(
                Bucket=self.store.bucket_name,
                Key=self.key,
                Body=bytes(self.buffer),
                ContentType=self.content_type,
            )
            return
        if self.buffer:
            self.flush()
        self.store.s3.complete_multipart_upload(
            Bucket=self.store.bucket_name,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self.store.s3.abort_multipart_upload(Bucket=self.store.bucket_name, Key=self.key, UploadId=self._upload_id)


def _assemble(store: Store, sources: list[_Source], key: str, *, content_type: str) -> None:
    """Write the sources, in order, as one object at `key`, holding at most PIECE_BYTES in memory."""
    sources = [s for s in sources if s.size]
    if len(sources) == 1:
        # One object is one server-side copy (S3 copies up to 5 GB in one request).
        try:
            store.s3.copy_object(
                Bucket=store.bucket_name,
                Key=key,
                CopySource={"Bucket": store.bucket_name, "Key": sources[0].key},
                CopySourceIfMatch=sources[0].etag,
                ContentType=content_type,
                MetadataDirective="REPLACE",
            )
        except ClientError as exc:
            _reraise(exc)
        return
    writer = _Writer(store, key, content_type)
    try:
        for source in sources:
            pos = 0
            while pos < source.size:
                left = source.size - pos
                held = len(writer.buffer)
                if held >= S3_MIN_PART_BYTES and left >= S3_MIN_PART_BYTES:
                    # The buffer is already a valid part and S3 can copy the rest: stop buffering.
                    writer.flush()
                elif not held and left >= S3_MIN_PART_BYTES:
                    writer.copy(source, pos, source.size)
                    pos = source.size
                else:
                    top_up = S3_MIN_PART_BYTES - held
                    # Read only what makes the buffer a valid part when S3 can then copy the remainder.
                    if 0 < held < S3_MIN_PART_BYTES and left - top_up >= S3_MIN_PART_BYTES:
                        take = top_up
                    else:
                        take = min(left, PIECE_BYTES - held)
                    writer.take(source, pos, take)
                    pos += take
                    if len(writer.buffer) >= PIECE_BYTES:
                        writer.flush()
        writer.finish()
    except BaseException:
        writer.abort()
        raise


# ------------------------------------------------------------------------------------------ cleanup


def _delete_staged(store: Store, upload: UploadRecord) -> None:
    """Delete the upload's parts and presigned object once they are joined or abandoned."""
    prefix = layout.upload_prefix(upload.tenant_id, upload.id)
    try:
        keys = [
            obj["Key"]
            for page in store.s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket_name, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
    except (BotoCoreError, ClientError):
        logger.warning("Could not list staged parts", extra={"upload_id": upload.id}, exc_info=True)
        return
    _delete_quietly(store, keys)


def _delete_quietly(store: Store, keys: list[str]) -> None:
    """Best effort: the state change already happened; a leftover object costs storage, not correctness."""
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        try:
            store.s3.delete_objects(
                Bucket=store.bucket_name, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        except (BotoCoreError, ClientError):
            logger.warning("Could not delete staged objects", extra={"keys": batch[:10]}, exc_info=True)
