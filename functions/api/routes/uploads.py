"""/v1/uploads: OpenAI's Uploads API (create, parts, complete, cancel) and a presigned-URL extension."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter, File, UploadFile

from batchline import uploads
from batchline.models import PresignedUpload, UploadComplete, UploadCreate, UploadObject, UploadPartObject
from batchline.observability import metrics
from routes.deferred import DeferredRoute
from routes.deps import RATE_LIMITED, SettingsDep, StoreDep, TenantId, errors

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=RATE_LIMITED, route_class=DeferredRoute)

_PRESIGNED_DESCRIPTION = """\
Batchline extension, for clients that can PUT straight to S3 (files up to 200 MB, no parts):

1. `POST /v1/uploads` with the file's exact `bytes`;
2. `POST /v1/uploads/{upload_id}/presigned_url` answers `{url, method: "PUT", headers, expires_at}`;
3. PUT the whole file to `url` with the given `headers` before `expires_at` (the signature covers
   `Content-Length`, so S3 refuses any other size);
4. `POST /v1/uploads/{upload_id}/complete` with `part_ids: []` registers what was PUT as the File
   (its size must equal `bytes`, else 422).

Any number of URLs may be asked for while the upload is pending; the last PUT wins.
"""


@router.post("", response_model=UploadObject, responses=errors(413, 422))
def create_upload(body: UploadCreate, tenant: TenantId, store: StoreDep) -> UploadObject:
    """Start an upload of a file of `bytes` bytes (up to 200 MB); it takes parts for an hour."""
    return uploads.create_upload(store, tenant, body)


@router.post("/{upload_id}/parts", response_model=UploadPartObject, responses=errors(404, 409, 413, 422))
def add_part(
    upload_id: str,
    tenant: TenantId,
    store: StoreDep,
    settings: SettingsDep,
    data: Annotated[UploadFile, File(description="The part's bytes, up to the direct upload limit.")],
) -> UploadPartObject:
    """Add a part to a pending upload; parts may arrive in any order."""
    return uploads.add_part(
        store, tenant, upload_id, data.file, size=data.size or 0, max_bytes=settings.max_upload_bytes
    )


@router.post("/{upload_id}/complete", response_model=UploadObject, responses=errors(404, 409, 422))
def complete_upload(upload_id: str, body: UploadComplete, tenant: TenantId, store: StoreDep) -> UploadObject:
    """Join the parts in the order of `part_ids` into a File (`part_ids: []` after a presigned PUT)."""
    upload = uploads.complete_upload(store, tenant, upload_id, body)
    metrics.add_metric(name="FileBytesUploaded", unit=MetricUnit.Bytes, value=upload.bytes)
    return upload


@router.post("/{upload_id}/cancel", response_model=UploadObject, responses=errors(404, 409))
def cancel_upload(upload_id: str, tenant: TenantId, store: StoreDep) -> UploadObject:
    """Cancel a pending upload and drop its parts; a completed upload answers 409."""
    return uploads.cancel_upload(store, tenant, upload_id)


@router.post(
    "/{upload_id}/presigned_url",
    response_model=PresignedUpload,
    responses=errors(404, 409),
    summary="Presigned URL for a direct PUT to S3",
    description=_PRESIGNED_DESCRIPTION,
)
def presigned_url(upload_id: str, tenant: TenantId, store: StoreDep) -> PresignedUpload:
    """A short-lived URL to PUT the whole file to."""
    return uploads.presign_put(store, tenant, upload_id)
