"""The api function: Batchline's OpenAI-compatible HTTP API (FastAPI), served by Lambda through Mangum.

Routers (routes/) parse the request, call the core and shape the answer. Errors become OpenAI's body
here, in one place. uvicorn serves the same `app` in the local cloud.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from mangum import Mangum
from starlette.exceptions import HTTPException

from batchline import ids
from batchline.errors import BatchlineError, error_body, status_body, to_http
from batchline.files import filename_too_long
from batchline.observability import logger, metrics, tracer
from routes import admin, batches, deps, files, jobs, models, uploads

# /docs and /redoc load their scripts from this function (under /static-offline-docs), not from a CDN:
# they work where the internet does not, and no third party sees who reads the API's documents.
app = FastAPIOffline(
    title="Batchline",
    version="0.1.0",
    summary="A serverless, OpenAI-compatible Batch API.",
    description="OpenAI's Files and Batches API with jobs, usage and cost, for the official openai SDK.",
)
app.include_router(files.router)
app.include_router(batches.router)
app.include_router(jobs.router)
app.include_router(models.router)
app.include_router(admin.router)
app.include_router(uploads.router)


def _openapi() -> dict[str, Any]:
    """FastAPI's document, with OpenAI's error body among its schemas: every error status refers to it."""
    document = FastAPI.openapi(app)
    schemas = document["components"]["schemas"]
    if "ErrorBody" not in schemas:  # FastAPI keeps the document it built: added once
        document["components"]["schemas"] = dict(sorted({**schemas, **deps.error_schemas()}.items()))
    return document


app.openapi = _openapi  # type: ignore[method-assign]


def _answer_headers(request: Request) -> dict[str, str]:
    """What every answer carries: its `x-request-id` (API Gateway's, so it can be found in its logs; ours
    where there is none) and, for a tenant, where its key stands, as OpenAI's `x-ratelimit-*` headers do."""
    if not hasattr(request.state, "request_id"):
        context = (request.scope.get("aws.event") or {}).get("requestContext") or {}
        request.state.request_id = context.get("requestId") or ids.request_id()
    headers = {"x-request-id": request.state.request_id}
    rate = getattr(request.state, "rate", None)
    if rate is not None:
        headers.update(rate.headers())
    return headers


@app.middleware("http")
async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    _answer_headers(request)
    response = await call_next(request)
    response.headers.update(_answer_headers(request))
    return response


@app.exception_handler(BatchlineError)
def _domain_error(_: Request, exc: BatchlineError) -> JSONResponse:
    status, body = to_http(exc)
    return JSONResponse(body, status_code=status, headers=exc.headers)


@app.exception_handler(RequestValidationError)
def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    kind = first.get("type")
    if kind == "json_invalid":
        message, param = "We could not parse the JSON body of your request.", None
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    else:
        message = f"Invalid value for '{param}': {first.get('msg')}." if param else str(first.get("msg"))
    return JSONResponse(error_body(message, "invalid_request_error", param=param), status_code=422)


def _part_headers_too_large(exc: BaseException) -> bool:
    """The multipart parser refused a part's header line past its limit (4 KiB and a little).

    The only header of a part a client makes that long is its Content-Disposition with the filename,
    so this is a filename far over ours, which the route would have named had the part been read.
    python-multipart has no error class of its own for it: its message is what tells.
    """
    from python_multipart.exceptions import MultipartParseError  # loaded already: it is what failed

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, MultipartParseError) and str(cause) == "Maximum header size exceeded":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _file_field(request: Request) -> str:
    """The form field that carries the route's file: `file`, or an upload part's `data`."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    fields = [f.alias for f in getattr(dependant, "body_params", ()) if isinstance(f.field_info, params.File)]
    return fields[0] if len(fields) == 1 else "file"


@app.exception_handler(HTTPException)
def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and _part_headers_too_large(exc):
        return _domain_error(request, filename_too_long(_file_field(request)))
    if exc.status_code == 400:
        # The framework's 400 is a body it could not read (JSON that is not UTF-8, broken multipart): the
        # contract's 422 for a request that fails validation, as for JSON that does not parse.
        generic = exc.detail == "There was an error parsing the body"
        message = "We could not parse the body of your request." if generic else str(exc.detail)
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=422)
    unrouted = exc.status_code in (404, 405)
    message = f"Invalid URL ({request.method} {request.url.path})" if unrouted else str(exc.detail)
    return JSONResponse(status_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers)


@app.exception_handler(Exception)
def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The trace goes to the logs, never to the client. This handler runs outside the middleware (Starlette
    # answers an unhandled error last), so the answer's headers are added here.
    logger.exception("Unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("The server had an error while processing your request.", "server_error"),
        status_code=500,
        headers=_answer_headers(request),
    )


_asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps.get_idempotency().register_lambda_context(context)
    return _asgi(event, context)  # type: ignore[arg-type]
