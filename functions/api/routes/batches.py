"""/v1/batches: create, retrieve."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import APIRouter

from batchline import batches
from batchline.models import BatchCreate, BatchObject
from batchline.observability import metrics
from routes.deps import StoreDep, TenantId, errors

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post("", response_model=BatchObject, responses=errors(404, 409, 422))
def create_batch(body: BatchCreate, tenant: TenantId, store: StoreDep) -> BatchObject:
    """Create a batch from an uploaded `batch` file; it starts in `validating`."""
    record = batches.create_batch(store, tenant, body)
    metrics.add_metric(name="BatchesCreated", unit=MetricUnit.Count, value=1)
    return record


@router.get("/{batch_id}", response_model=BatchObject, responses=errors(404))
def retrieve_batch(batch_id: str, tenant: TenantId, store: StoreDep) -> BatchObject:
    """A Batch object."""
    return store.get_batch(tenant, batch_id)
