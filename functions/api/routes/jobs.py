"""/v1/jobs: admins create and retire jobs; tenants see their own."""

from __future__ import annotations

import time

from fastapi import APIRouter

from batchline import jobs
from batchline.models import Deleted, Job, JobCreate, Page
from routes.deps import Admin, After, PageSize, SettingsDep, StoreDep, TenantId, errors, page

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", response_model=Job, responses=errors(404, 422))
def create_job(body: JobCreate, _: Admin, store: StoreDep, settings: SettingsDep) -> Job:
    """Admin: link a tenant's batches to a model, a provider, a use case, an SLA and a price."""
    return jobs.create_job(
        store,
        body,
        allow_private_backends=settings.allow_private_backends,
        provider_secret_prefix=settings.provider_secret_prefix,
    )


@router.get("", response_model=Page[Job], responses=errors(422, 429))
def list_jobs(
    tenant: TenantId,
    store: StoreDep,
    after: After = None,
    limit: PageSize = 20,
) -> Page[Job]:
    """The tenant's jobs, newest first."""
    records, more = store.list_jobs(tenant, after=after, limit=limit)
    return page(Job, records, more)


@router.get("/{job_id}", response_model=Job, responses=errors(404, 429))
def retrieve_job(job_id: str, tenant: TenantId, store: StoreDep) -> Job:
    """A job of the tenant's."""
    return store.get_job(tenant, job_id)


@router.delete("/{job_id}", response_model=Deleted, responses=errors(404))
def delete_job(job_id: str, _: Admin, store: StoreDep) -> Deleted:
    """Admin: retire a job; running batches finish, new ones cannot use it."""
    store.delete_job(job_id, int(time.time()))
    return Deleted(id=job_id, object="job")
