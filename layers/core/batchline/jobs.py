"""Jobs: what runs a tenant's batches (model, provider, SLA, price)."""

from __future__ import annotations

import time

from batchline import ids
from batchline.backends import base_url_problem, secret_problem
from batchline.errors import InvalidRequest
from batchline.models import JobCreate, JobRecord, OpenAIProvider
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
    job = JobRecord(**request.model_dump(), tenant_id=request.tenant, id=ids.job_id(), created_at=int(time.time()))
    store.jobs.put(job)
    return job
