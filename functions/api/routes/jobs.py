"""/v1/jobs: admins create and retire jobs; tenants see their own."""

from __future__ import annotations

import time

from fastapi import APIRouter

from batchline import jobs
from batchline.models import Deleted, JobCreate, JobObject, Page, public
from routes.deferred import DeferredRoute
from routes.deps import Admin, After, PageSize, SettingsDep, StoreDep, TenantId, errors, page

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=DeferredRoute)


@router.post("", response_model=JobObject, responses=errors(404, 422))
def create_job(body: JobCreate, _: Admin, store: StoreDep, settings: SettingsDep) -> JobObject:
    """Admin: link a tenant's batches to a model, a provider, a use case, an SLA and a price."""
    job = jobs.create_job(
        store,
        body,
        allow_private_backends=settings.allow_private_backends,
        provider_secret_prefix=settings.provider_secret_prefix,
    )
    return public(JobObject, job)


@router.get("", response_model=Page[JobObject], responses=errors(422, 429))
def list_jobs(
    tenant: TenantId,
    store: StoreDep,
    after: After = None,
    limit: PageSize = 20,
) -> Page[JobObject]:
    """The tenant's jobs, newest first."""
    records, more = store.jobs.page(tenant, after=after, limit=limit)
    return page(JobObject, records, more)


@router.get("/{job_id}", response_model=JobObject, responses=errors(404, 429))
def retrieve_job(job_id: str, tenant: TenantId, store: StoreDep) -> JobObject:
    """A job of the tenant's."""
    return public(JobObject, store.jobs.get(tenant, job_id))


@router.delete("/{job_id}", response_model=Deleted, responses=errors(404))
def delete_job(job_id: str, _: Admin, store: StoreDep) -> Deleted:
    """Admin: retire a job; running batches finish, new ones cannot use it."""
    store.jobs.retire(job_id, int(time.time()))
    return Deleted(id=job_id, object="job")
