"""Tenants and their API keys: as an admin creates and sees them, and as they are kept (a key only as a hash)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batchline.models.common import NOT_A_BODY, Model, ObjectId, Strict, example

# A tenant's enqueued requests can never exceed what one account's batches could hold.
MAX_ENQUEUED_REQUESTS = 1_000_000_000


class TenantLimits(Model):
    """A tenant's own limits; null: the stack's default (its RequestsPerSecond, EnqueuedRequests)."""

    requests_per_second: int | None = Field(default=None, description="Requests per second per API key.")
    enqueued_requests: int | None = Field(
        default=None, description="Request lines the tenant's non-terminal batches may hold together."
    )


class TenantLimitsUpdate(Strict):
    """Limits as an admin sets them: whole numbers (`"5"` is refused, as 5.0 is)."""

    model_config = NOT_A_BODY

    # One window item takes every request of its key in that second: DynamoDB writes one item at most
    # 1,000 times a second, so no key can be counted beyond that.
    requests_per_second: int | None = Field(default=None, strict=True, ge=1, le=1_000)
    enqueued_requests: int | None = Field(default=None, strict=True, ge=1, le=MAX_ENQUEUED_REQUESTS)


class TenantRecord(Model):
    """A tenant (a project) as an admin sees it and as it is kept."""

    model_config = example(
        {
            "id": "tenant_abc123",
            "object": "tenant",
            "name": "acme",
            "created_at": 1764547200,
            "limits": {"requests_per_second": None, "enqueued_requests": None},
            "default_job_id": None,
        }
    )

    id: str
    object: Literal["tenant"] = "tenant"
    name: str
    created_at: int
    limits: TenantLimits = Field(default_factory=TenantLimits)
    default_job_id: str | None = Field(
        default=None, description="The job a batch created without `job_id` runs on (set by an admin)."
    )


class TenantUpdate(Strict):
    """Body of PATCH /v1/admin/tenants/{tenant_id}: what is given replaces the tenant's; the rest stays."""

    model_config = example({"limits": {"requests_per_second": 50}, "default_job_id": "job-1a2b3c4d"})

    limits: TenantLimitsUpdate | None = None
    default_job_id: ObjectId | None = Field(
        default=None, description="One of the tenant's jobs, for batches created without `job_id`; null unsets it."
    )


class TenantCreate(Strict):
    """Body of POST /v1/admin/tenants."""

    model_config = example({"name": "acme"})

    name: str = Field(min_length=1, max_length=256)


class ApiKeyRecord(Model):
    """An API key as kept: only its keyed hash, never the key."""

    id: str
    tenant_id: str
    key_hash: str
    created_at: int


class ApiKeyObject(Model):
    """An API key as the admin sees it; `key` is shown once, when it is created."""

    model_config = example(
        {"id": "key_abc123", "object": "api_key", "tenant_id": "tenant_abc123", "created_at": 1764547200, "key": None}
    )

    id: str
    object: Literal["api_key"] = "api_key"
    tenant_id: str
    created_at: int
    key: str | None = Field(default=None, description="The key itself: only in the answer that creates it.")


class TenantCreated(TenantRecord):
    api_key: ApiKeyObject
