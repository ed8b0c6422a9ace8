"""Jobs: what runs a tenant's batches (model, provider, SLA, price)."""

from __future__ import annotations

import time

from batchline import ids
from batchline.models import Job, JobCreate
from batchline.store import Store


def create_job(store: Store, request: JobCreate) -> Job:
    """Admin: a job for an existing tenant."""
    store.get_tenant(request.tenant, param="tenant")
    job = Job(**request.model_dump(), id=ids.job_id(), created_at=int(time.time()))
    store.put_job(job)
    return job
