"""/v1/files: upload, list, retrieve, content, delete."""

from __future__ import annotations

import hashlib
from pathlib import PurePath
from typing import Annotated, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from batchline import files
from batchline.errors import InvalidRequest
from batchline.models import (
    MAX_EXPIRY_SECONDS,
    MAX_FILENAME_CHARS,
    MIN_EXPIRY_SECONDS,
    Deleted,
    ExpiresAfter,
    FileObject,
    FilePurpose,
    Page,
    UploadPurpose,
    public,
)
from batchline.observability import metrics
from routes.deferred import DeferredRoute
from routes.deps import (
    RATE_LIMITED,
    After,
    IdempotencyDep,
    IdempotencyKey,
    SettingsDep,
    StoreDep,
    TenantId,
    errors,
    page,
)

router = APIRouter(prefix="/v1/files", tags=["files"], responses=RATE_LIMITED, route_class=DeferredRoute)

# Long enough to start a large download, short enough that a leaked link soon stops working.
CONTENT_LINK_SECONDS = 900


def _digest(upload: UploadFile) -> str:
    """The upload's SHA-256, read from its spooled copy, which is then rewound for storing."""
    digest = hashlib.sha256()
    for block in iter(lambda: upload.file.read(1 << 20), b""):
        digest.update(block)
    upload.file.seek(0)
    return digest.hexdigest()


async def _no_empty_expiry(request: Request) -> None:
    """FastAPI reads an empty form value as an absent one; `expires_after[anchor]=` is a mistake to answer."""
    form = await request.form()  # the form FastAPI already parsed, not a second read of the body
    for name in ("expires_after[anchor]", "expires_after[seconds]"):
        if form.get(name) == "":
            raise InvalidRequest(f"Invalid '{name}': it must not be empty.", param=name)


@router.post("", response_model=FileObject, responses=errors(409, 413, 422), dependencies=[Depends(_no_empty_expiry)])
def create_file(
    tenant: TenantId,
    store: StoreDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
    file: Annotated[
        UploadFile,
        File(description=f"The file to upload (JSONL for `batch`); its name at most {MAX_FILENAME_CHARS} characters."),
    ],
    purpose: Annotated[UploadPurpose, Form(description="`batch` is the purpose Batchline processes.")],
    expires_after_anchor: Annotated[Literal["created_at"] | None, Form(alias="expires_after[anchor]")] = None,
    expires_after_seconds: Annotated[
        int | None, Form(alias="expires_after[seconds]", ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS)
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Upload a file (up to the direct limit; larger files use the Uploads API)."""
    expires_after = None
    if expires_after_seconds is not None:
        expires_after = ExpiresAfter(anchor=expires_after_anchor or "created_at", seconds=expires_after_seconds)
    size = file.size or 0
    if size > settings.max_upload_bytes:
        raise files.too_large(size, settings.max_upload_bytes)
    filename = PurePath(file.filename or "file").name
    if len(filename) > MAX_FILENAME_CHARS:
        raise files.filename_too_long()

    def create() -> dict[str, Any]:
        record = files.create_file(
            store,
            tenant,
            filename=filename,
            purpose=purpose,
            body=file.file,
            size=size,
            max_bytes=settings.max_upload_bytes,
            expires_after=expires_after,
        )
        metrics.add_metric(name="FileBytesUploaded", unit=MetricUnit.Bytes, value=record.bytes)
        return public(FileObject, record).model_dump()

    fingerprint = [filename, purpose, expires_after_seconds, _digest(file)] if idempotency_key else None
    return idempotency.run(create, scope="files", tenant=tenant, key=idempotency_key, fingerprint=fingerprint)


@router.get("", response_model=Page[FileObject], responses=errors(422))
def list_files(
    tenant: TenantId,
    store: StoreDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Annotated[Literal["asc", "desc"], Query(description="By `created_at`.")] = "desc",
    purpose: Annotated[FilePurpose | None, Query()] = None,
) -> Page[FileObject]:
    """The tenant's files."""
    records, more = store.files.page(tenant, after=after, limit=limit, newest_first=order == "desc", purpose=purpose)
    return page(FileObject, records, more)


@router.get("/{file_id}", response_model=FileObject, responses=errors(404))
def retrieve_file(file_id: str, tenant: TenantId, store: StoreDep) -> FileObject:
    """A File object."""
    return store.files.get(tenant, file_id)


@router.delete("/{file_id}", response_model=Deleted, responses=errors(404, 409))
def delete_file(file_id: str, tenant: TenantId, store: StoreDep) -> Deleted:
    """Delete a file and its bytes; 409 while a running batch reads it."""
    store.files.delete(tenant, file_id)
    return Deleted(id=file_id, object="file")


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {
                    "example": '{"id": "batch_req_1", "custom_id": "request-1", "response": {"status_code": 200, '
                    '"request_id": "req_1", "body": {"object": "chat.completion"}}, "error": null}\n'
                }
            },
            "description": "The bytes.",
        },
        307: {"description": "Larger than a Lambda answer can carry: a short-lived S3 link to the bytes."},
        **errors(404),
    },
)
def file_content(file_id: str, tenant: TenantId, store: StoreDep, settings: SettingsDep) -> Response:
    """The file's bytes, exactly as uploaded or produced (large ones through a redirect the SDK follows)."""
    record = store.files.get(tenant, file_id)
    if record.bytes > settings.max_inline_content_bytes:
        url = store.objects.presign_get(record.s3_key, expires_in=CONTENT_LINK_SECONDS, filename=record.filename)
        return RedirectResponse(url, status_code=307)
    return StreamingResponse(
        files.content(store, record),
        media_type="application/octet-stream",
        headers={"Content-Length": str(record.bytes)},
    )
