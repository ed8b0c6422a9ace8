"""/v1/models: the model names a tenant can batch against, for clients that discover models first."""

from __future__ import annotations

from fastapi import APIRouter

from batchline import jobs
from batchline.errors import NotFound
from batchline.models import ModelObject, Page
from routes.deferred import DeferredRoute
from routes.deps import StoreDep, TenantId, errors, page

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=DeferredRoute)


@router.get("", response_model=Page[ModelObject], responses=errors(429))
def list_models(tenant: TenantId, store: StoreDep) -> Page[ModelObject]:
    """The tenant's jobs' models and their aliases, by name (OpenAI's list: one page)."""
    return page(ModelObject, jobs.models_of(jobs.tenant_jobs(store, tenant)), has_more=False)


@router.get("/{model:path}", response_model=ModelObject, responses=errors(404, 429))
def retrieve_model(model: str, tenant: TenantId, store: StoreDep) -> ModelObject:
    """One model name of the tenant's jobs (a name may hold a slash, as `meta-llama/Llama-3.1-8B` does)."""
    for found in jobs.models_of(jobs.tenant_jobs(store, tenant)):
        if found.id == model:
            return found
    raise NotFound(
        f"The model '{model}' does not exist or you do not have access to it.", param="model", code="model_not_found"
    )
