"""/v1/files: upload, retrieve, content."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Literal

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse

from batchline import files
from batchline.models import MAX_EXPIRY_SECONDS, MIN_EXPIRY_SECONDS, ExpiresAfter, FileObject, UploadPurpose
from batchline.observability import metrics
from routes.deps import SettingsDep, StoreDep, TenantId, errors

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post("", response_model=FileObject, responses=errors(413, 422))
def create_file(
    tenant: TenantId,
    store: StoreDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The file to upload (JSONL for `batch`).")],
    purpose: Annotated[UploadPurpose, Form(description="`batch` is the purpose Batchline processes.")],
    expires_after_anchor: Annotated[Literal["created_at"] | None, Form(alias="expires_after[anchor]")] = None,
    expires_after_seconds: Annotated[
        int | None, Form(alias="expires_after[seconds]", ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS)
    ] = None,
) -> FileObject:
    """Upload a file (up to the direct limit; larger files use the Uploads API)."""
    expires_after = None
    if expires_after_seconds is not None:
        expires_after = ExpiresAfter(
            anchor=expires_after_anchor or "created_at", seconds=expires_after_seconds
        )
    record = files.create_file(
        store,
        tenant,
        filename=PurePath(file.filename or "file").name,
        purpose=purpose,
        body=file.file,
        size=file.size or 0,
        max_bytes=settings.max_upload_bytes,
        expires_after=expires_after,
    )
    metrics.add_metric(name="FileBytesUploaded", unit=MetricUnit.Bytes, value=record.bytes)
    return record


@router.get("/{file_id}", response_model=FileObject, responses=errors(404))
def retrieve_file(file_id: str, tenant: TenantId, store: StoreDep) -> FileObject:
    """A File object."""
    return store.get_file(tenant, file_id)


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(404)},
)
def file_content(file_id: str, tenant: TenantId, store: StoreDep) -> StreamingResponse:
    """The file's bytes, exactly as uploaded or produced."""
    record = store.get_file(tenant, file_id)
    return StreamingResponse(
        store.stream(record.s3_key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(record.bytes)},
    )
