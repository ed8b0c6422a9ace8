"""The api function: Batchline's OpenAI-compatible HTTP API (FastAPI), served by Lambda through Mangum.

Routes parse the request, call the core and shape the answer; errors are mapped to OpenAI's body here,
in one place. uvicorn serves the same `app` in the local cloud.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import PurePath
from typing import Annotated, Any, Literal

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from mangum import Mangum
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from batchline import batches, files
from batchline.auth import Authenticator, Principal
from batchline.config import ApiSettings
from batchline.errors import BatchlineError, error_body, status_body, to_http
from batchline.models import (
    MAX_EXPIRY_SECONDS,
    MIN_EXPIRY_SECONDS,
    BatchCreate,
    BatchObject,
    ExpiresAfter,
    FileObject,
    UploadPurpose,
)
from batchline.observability import logger, metrics, tracer
from batchline.secret_values import secrets_manager_getter
from batchline.store import Store


# ------------------------------------------------------------------------------------ dependencies
# Built on first use, not at import: a cold start pays only for what the first request needs.
@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()  # type: ignore[call-arg]  # read from the environment


@lru_cache
def get_store() -> Store:
    settings = get_settings()
    return Store(settings.table_name, settings.bucket_name)


@lru_cache
def get_authenticator() -> Authenticator:
    settings = get_settings()
    return Authenticator(
        get_store(),
        secrets_manager_getter(),
        admin_key_secret=settings.admin_key_secret,
        key_hash_secret=settings.key_hash_secret,
    )


def get_principal(
    authenticator: Annotated[Authenticator, Depends(get_authenticator)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    return authenticator.authenticate(authorization)


def get_tenant(principal: Annotated[Principal, Depends(get_principal)]) -> str:
    return principal.require_tenant()


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
TenantId = Annotated[str, Depends(get_tenant)]


# --------------------------------------------------------------------------------------- errors
class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error body: every non-2xx answer has it."""

    error: ErrorDetail


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in (401, 403, 500, *statuses)}


app = FastAPI(
    title="Batchline",
    version="0.1.0",
    summary="A serverless, OpenAI-compatible Batch API.",
    description="OpenAI's Files and Batches API with jobs, usage and cost, for the official openai SDK.",
)


@app.exception_handler(BatchlineError)
def _domain_error(_: Request, exc: BatchlineError) -> JSONResponse:
    status, body = to_http(exc)
    return JSONResponse(body, status_code=status)


@app.exception_handler(RequestValidationError)
def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        message = "We could not parse the JSON body of your request."
        param = None
    elif first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first.get("type") == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    else:
        message = f"Invalid value for '{param}': {first.get('msg')}." if param else str(first.get("msg"))
    return JSONResponse(error_body(message, "invalid_request_error", param=param), status_code=422)


@app.exception_handler(HTTPException)
def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = (
        f"Invalid URL ({request.method} {request.url.path})"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return JSONResponse(
        status_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers
    )


@app.exception_handler(Exception)
def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # The trace goes to the logs, never to the client.
    logger.exception("Unhandled error")
    return JSONResponse(
        error_body("The server had an error while processing your request.", "server_error"), status_code=500
    )


# ---------------------------------------------------------------------------------------- files
@app.post("/v1/files", response_model=FileObject, responses=_errors(413, 422), tags=["files"])
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
    return FileObject.model_validate(record, from_attributes=True)


@app.get("/v1/files/{file_id}", response_model=FileObject, responses=_errors(404), tags=["files"])
def retrieve_file(file_id: str, tenant: TenantId, store: StoreDep) -> FileObject:
    """A File object."""
    return FileObject.model_validate(store.get_file(tenant, file_id), from_attributes=True)


@app.get(
    "/v1/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **_errors(404)},
    tags=["files"],
)
def file_content(file_id: str, tenant: TenantId, store: StoreDep) -> StreamingResponse:
    """The file's bytes, exactly as uploaded or produced."""
    record = store.get_file(tenant, file_id)
    return StreamingResponse(
        store.stream(record.s3_key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(record.bytes)},
    )


# -------------------------------------------------------------------------------------- batches
@app.post("/v1/batches", response_model=BatchObject, responses=_errors(404, 409, 422), tags=["batches"])
def create_batch(body: BatchCreate, tenant: TenantId, store: StoreDep) -> BatchObject:
    """Create a batch from an uploaded `batch` file; it starts in `validating`."""
    record = batches.create_batch(store, tenant, body)
    metrics.add_metric(name="BatchesCreated", unit=MetricUnit.Count, value=1)
    return BatchObject.model_validate(record, from_attributes=True)


@app.get("/v1/batches/{batch_id}", response_model=BatchObject, responses=_errors(404), tags=["batches"])
def retrieve_batch(batch_id: str, tenant: TenantId, store: StoreDep) -> BatchObject:
    """A Batch object."""
    return BatchObject.model_validate(store.get_batch(tenant, batch_id), from_attributes=True)


# --------------------------------------------------------------------------------------- Lambda
_asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _asgi(event, context)  # type: ignore[arg-type]
