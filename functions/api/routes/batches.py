"""/v1/batches: create, list, retrieve, cancel."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter

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
