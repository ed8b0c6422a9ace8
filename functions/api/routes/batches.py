"""/v1/batches: create, list, retrieve, cancel, and partial results."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter, Query
from fastapi.responses import Response

from batchline import batches
from batchline.models import BatchCreate, BatchObject, Page, public
from batchline.observability import metrics
from routes.deferred import DeferredRoute
from routes.deps import (
    RATE_LIMITED,
    After,
    IdempotencyDep,
    IdempotencyKey,
    PageSize,
    RunsDep,
    StoreDep,
    TenantId,
    errors,
    page,
)

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=RATE_LIMITED, route_class=DeferredRoute)


@router.post("", response_model=BatchObject, responses=errors(404, 409, 422))
def create_batch(
    body: BatchCreate,
    tenant: TenantId,
    store: StoreDep,
    runs: RunsDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Create a batch from an uploaded `batch` file; it starts in `validating`."""

    def create() -> dict[str, Any]:
        record = batches.create_batch(store, runs, tenant, body)
        metrics.add_metric(name="BatchesCreated", unit=MetricUnit.Count, value=1)
        return public(BatchObject, record).model_dump()

    fingerprint = body.model_dump(mode="json")
    return idempotency.run(create, scope="batches", tenant=tenant, key=idempotency_key, fingerprint=fingerprint)


@router.get("", response_model=Page[BatchObject], responses=errors(422))
def list_batches(
    tenant: TenantId,
    store: StoreDep,
    after: After = None,
    limit: PageSize = 20,
) -> Page[BatchObject]:
    """The tenant's batches, newest first."""
    records, more = store.batches.page(tenant, after=after, limit=limit)
    return page(BatchObject, records, more)


@router.get("/{batch_id}", response_model=BatchObject, responses=errors(404))
def retrieve_batch(batch_id: str, tenant: TenantId, store: StoreDep) -> BatchObject:
    """A Batch object."""
    return store.batches.get(tenant, batch_id)


@router.post("/{batch_id}/cancel", response_model=BatchObject, responses=errors(404, 409))
def cancel_batch(batch_id: str, tenant: TenantId, store: StoreDep) -> BatchObject:
    """Cancel a `validating` or `in_progress` batch; it answers in `cancelling`."""
    return batches.cancel_batch(store, tenant, batch_id)


CURSOR_HEADER = "x-batchline-cursor"
HAS_MORE_HEADER = "x-batchline-has-more"
PartialsAfter = Annotated[
    str | None,
    Query(
        max_length=8192,
        description=f"The `{CURSOR_HEADER}` header of the previous answer; without it, from the first line.",
    ),
]
PARTIAL_RESULTS_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Output and error lines committed since the cursor, as in the result files (JSONL).",
        "content": {
            "application/jsonl": {
                "schema": {"type": "string"},
                "example": '{"id": "batch_req_1", "custom_id": "request-1", "response": {"status_code": 200, '
                '"request_id": "req_1", "body": {"object": "chat.completion"}}, "error": null}\n',
            }
        },
        "headers": {
            CURSOR_HEADER: {
                "description": "Opaque: pass it as `after` for the lines that follow.",
                "schema": {"type": "string"},
            },
            HAS_MORE_HEADER: {
                "description": "`false` once the batch has ended and every line has been read.",
                "schema": {"type": "string", "enum": ["true", "false"]},
            },
        },
    },
}


@router.get(
    "/{batch_id}/partial_results",
    response_class=Response,
    responses={**PARTIAL_RESULTS_ANSWER, **errors(404, 409)},
)
def partial_results(batch_id: str, tenant: TenantId, store: StoreDep, after: PartialsAfter = None) -> Response:
    """The output and error lines committed so far that `after` has not returned, about 2 MiB at most."""
    # Imported here: it brings finalize's merge code, which no other route needs (the api's cold start).
    from batchline import partials

    page = partials.read(store, tenant, batch_id, after)
    headers = {CURSOR_HEADER: page.cursor, HAS_MORE_HEADER: "true" if page.has_more else "false"}
    return Response(b"".join(page.lines), media_type="application/jsonl", headers=headers)
