"""Jobs: what runs a batch (model, provider, SLA, price), as an admin creates it and as it is kept."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AliasChoices, ConfigDict, Field, StringConstraints, model_validator

from batchline.models.common import (
    DEFAULT_ENDPOINTS,
    NOT_A_BODY,
    CanonicalEndpoint,
    CompletionWindow,
    Model,
    ObjectId,
    Strict,
    example,
)


class OpenAIProvider(Strict):
    model_config = NOT_A_BODY

    type: Literal["openai"]
    base_url: str = Field(
        min_length=1,
        max_length=2048,
        description="Base URL of an OpenAI-compatible server, e.g. `http://vllm:8000/v1`.",
    )
    # Secrets Manager names are at most 512 characters.
    api_key_secret: str | None = Field(
        default=None, min_length=1, max_length=512, description="Secrets Manager name of the key, or null."
    )


class BedrockProvider(Strict):
    model_config = NOT_A_BODY

    type: Literal["bedrock"]
    region: str = Field(min_length=1, max_length=32)
    model_id: str = Field(min_length=1, max_length=2048, description="A model id or ARN (Bedrock: at most 2048).")


class MockProvider(Strict):
    """Deterministic answers for demos and tests; never a real model."""

    model_config = NOT_A_BODY

    type: Literal["mock"]
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    failure_rate: Annotated[float, AfterValidator(lambda v: round(v, 6))] = Field(default=0.0, ge=0.0, le=1.0)


Provider = Annotated[OpenAIProvider | BedrockProvider | MockProvider, Field(discriminator="type")]


ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MAX_MODEL_ALIASES = 32


class Sla(Strict):
    model_config = NOT_A_BODY

    completion_window: CompletionWindow = "unlimited"
    max_concurrency: int = Field(default=50, ge=1, le=10_000, description="Requests in flight for a batch.")
    # Chunks are sized to the concurrency (cheapest); small ones isolate lines from each other's faults.
    lines_per_chunk: int | None = Field(
        default=None, ge=1, le=50_000, description="Most lines per chunk; by default sized to the concurrency."
    )


JOB_EXAMPLE = {
    "tenant": "tenant_abc123",
    "model": "llama-3.1-8b",
    "model_aliases": ["gpt-4o-mini"],
    "provider": {"type": "openai", "base_url": "https://vllm.example.com/v1", "api_key_secret": "batchline/vllm"},
    "use_case": "nightly summaries",
    "sla": {"completion_window": "24h", "max_concurrency": 50},
    "allowed_endpoints": ["/v1/chat/completions"],
    "price_1m_tokens": 0.2,
}


class JobDefinition(Strict):
    """What runs a job's batches, whoever owns it: the fields the request, the API object and the record share."""

    model_config = NOT_A_BODY

    model: ModelName
    provider: Provider
    use_case: str = Field(default="", max_length=1024)
    sla: Sla = Field(default_factory=Sla)
    allowed_endpoints: list[CanonicalEndpoint] = Field(default_factory=lambda: list(DEFAULT_ENDPOINTS))
    # DynamoDB stores magnitudes from 1e-130 to 1e126 only: bound and round what it will be asked to keep.
    price_1m_tokens: Annotated[float, AfterValidator(lambda v: round(v, 9))] = Field(
        default=0.0, ge=0.0, le=1_000_000.0, allow_inf_nan=False
    )
    model_aliases: list[ModelName] = Field(
        default_factory=list,
        max_length=MAX_MODEL_ALIASES,
        description="Other model names a request line may carry for this job (e.g. `gpt-4o-mini`, as code written "
        "for OpenAI sends); the upstream always receives `model`.",
    )

    @model_validator(mode="after")
    def _distinct_aliases(self) -> Self:
        if len(set(self.model_aliases)) != len(self.model_aliases) or self.model in self.model_aliases:
            raise ValueError("model_aliases must be distinct, and none may be the job's model.")
        return self

    def answers_to(self) -> frozenset[str]:
        """Every model name a request line may carry for this job."""
        return frozenset((self.model, *self.model_aliases))


class JobCreate(JobDefinition):
    """Body of POST /v1/jobs (admin)."""

    # A request body: built at import, as Strict's are (the definition it extends is deferred).
    model_config = ConfigDict(defer_build=False, **example(JOB_EXAMPLE))

    tenant: ObjectId


class JobObject(JobCreate):
    """A job as the API shows it: the request's fields (`tenant` among them) and its identity.

    `tenant` is read from a record's `tenant_id` as well: the API keeps the contract's name for the owner,
    the record keeps the records' name, and this is where one becomes the other.
    """

    model_config = ConfigDict(
        extra="ignore",
        **NOT_A_BODY,
        **example({**JOB_EXAMPLE, "id": "job-1a2b3c4d", "object": "job", "created_at": 1764547200}),
    )

    tenant: ObjectId = Field(validation_alias=AliasChoices("tenant", "tenant_id"))
    id: str = Field(description="`job-…`")
    object: Literal["job"] = "job"
    created_at: int


class JobRecord(JobDefinition):
    """A job as DynamoDB keeps it, owned by `tenant_id` as the other records are.

    Items written before `tenant_id` existed carry only `tenant`, and later ones both: either is read as the
    owner. New items are written with `tenant_id` alone, which every reader takes (the table's ownership
    check reads either name).
    """

    model_config = ConfigDict(extra="ignore", **NOT_A_BODY)

    id: str
    object: Literal["job"] = "job"
    created_at: int
    tenant_id: str

    @model_validator(mode="before")
    @classmethod
    def _one_owner(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tenant_id" not in data and "tenant" in data:
            data = {**data, "tenant_id": data["tenant"]}
        return data


class ModelObject(Model):
    """OpenAI's Model object: a name a tenant's request lines may carry, and the job it runs on."""

    model_config = example({"id": "gpt-4o-mini", "object": "model", "created": 1764547200, "owned_by": "job-1a2b3c4d"})

    id: str = Field(description="The model name (a job's model or one of its aliases).")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = Field(description="The job that runs it (`job-…`).")
