"""Jobs: what runs a tenant's batches (model, provider, SLA, price), which job a batch runs on, and the models
they make visible to the tenant (GET /v1/models)."""

from __future__ import annotations

import time

from batchline import ids
from batchline.backends import base_url_problem, secret_problem
from batchline.errors import InvalidRequest, NotFound
from batchline.models import JobCreate, JobRecord, ModelObject, OpenAIProvider
from batchline.store import Store


def check_provider(provider: object, *, allow_private_backends: bool, provider_secret_prefix: str) -> None:
    """InvalidRequest naming the field when the worker must not call this backend or read this secret."""
    if not isinstance(provider, OpenAIProvider):
        return
    problem = base_url_problem(provider.base_url, allow_private=allow_private_backends)
    if problem:
        raise InvalidRequest(f"Invalid 'provider.base_url': it {problem}.", param="provider.base_url")
    if provider.api_key_secret is not None:
        problem = secret_problem(provider.api_key_secret, prefix=provider_secret_prefix)
        if problem:
            raise InvalidRequest(f"Invalid 'provider.api_key_secret': it {problem}.", param="provider.api_key_secret")


def create_job(
    store: Store, request: JobCreate, *, allow_private_backends: bool, provider_secret_prefix: str
) -> JobRecord:
    """Admin: a job for an existing tenant, whose provider the worker may call."""
    check_provider(
        request.provider, allow_private_backends=allow_private_backends, provider_secret_prefix=provider_secret_prefix
    )
    store.tenants.get(request.tenant, param="tenant")
    # The request's `tenant` is the record's `tenant_id`: the record keeps one owner field, as the others do.
    fields = request.model_dump(exclude={"tenant"})
    job = JobRecord(**fields, tenant_id=request.tenant, id=ids.job_id(), created_at=int(time.time()))
    store.jobs.put(job)
    return job


# Enough for any tenant's jobs; a tenant with more must name its job.
MAX_JOBS_SCANNED = 1000


def tenant_jobs(store: Store, tenant_id: str) -> list[JobRecord]:
    """The tenant's jobs that are not retired, newest first (at most MAX_JOBS_SCANNED)."""
    found: list[JobRecord] = []
    after = None
    while len(found) < MAX_JOBS_SCANNED:
        page, more = store.jobs.page(tenant_id, after=after, limit=100)
        found.extend(page)
        if not more or not page:
            break
        after = page[-1].id
    return found


def job_for(store: Store, tenant_id: str, job_id: str | None, endpoint: str) -> JobRecord:
    """The job a batch runs on: the one it names; else the tenant's default job; else the tenant's one job
    that allows `endpoint`. Code written for OpenAI names none, so it must not have to."""
    if job_id is not None:
        return store.jobs.get(tenant_id, job_id, param="job_id")
    default = store.tenants.get(tenant_id).default_job_id
    if default is not None:
        try:
            return store.jobs.get(tenant_id, default, param="job_id")
        except NotFound:
            pass  # retired since it was made the default: as if there were none
    fitting = [job for job in tenant_jobs(store, tenant_id) if endpoint in job.allowed_endpoints]
    if len(fitting) == 1:
        return fitting[0]
    which = "none of this project's jobs allows" if not fitting else f"{len(fitting)} of this project's jobs allow"
    raise InvalidRequest(
        f"Missing required parameter: 'job_id' ({which} {endpoint}, and the project has no default job).",
        param="job_id",
    )


def models_of(jobs: list[JobRecord]) -> list[ModelObject]:
    """The model names the jobs answer to, each once (the newest job's, if two jobs share a name)."""
    seen: dict[str, ModelObject] = {}
    for job in jobs:
        for name in (job.model, *job.model_aliases):
            seen.setdefault(name, ModelObject(id=name, created=job.created_at, owned_by=job.id))
    return sorted(seen.values(), key=lambda m: m.id)
