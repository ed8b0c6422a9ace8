"""Pydantic models for every boundary: API requests and objects, and the records kept in DynamoDB."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)

Endpoint = Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
ENDPOINTS: tuple[Endpoint, ...] = Endpoint.__args__  # type: ignore[attr-defined]
DEFAULT_ENDPOINTS: tuple[Endpoint, ...] = ("/v1/chat/completions",)

# What a client may upload; the others (`batch_output`, ...) only the service produces.
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
FilePurpose = Literal[
    "assistants", "assistants_output", "batch", "batch_output", "fine-tune", "fine-tune-results",
    "vision", "user_data", "evals",
]  # fmt: skip

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
CompletionWindow = Literal["24h", "unlimited"]

MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 2_592_000


def canonical_path(url: str) -> str:
    """The one canonical form of an endpoint path: `v1/chat/completions` is `/v1/chat/completions`.

    Used for a batch's endpoint, a job's endpoints, a request line's url when it is validated and
    when it is sent, so that what was checked is what goes upstream.
    """
    return url if not url or url.startswith("/") else "/" + url


def _canonical_endpoint(value: Any) -> Any:
    """Accept `v1/chat/completions` as the SDK may send it; store the canonical form."""
    return canonical_path(value) if isinstance(value, str) else value


CanonicalEndpoint = Annotated[Endpoint, BeforeValidator(_canonical_endpoint)]


def _from_dynamodb(value: Any) -> Any:
    """DynamoDB hands back every number as a Decimal: the int or float it was stored from."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamodb(v) for v in value]
    return value


class Strict(BaseModel):
    """Request bodies: unknown fields are errors, like OpenAI's `Unrecognized request argument`.

    Types are strict, as OpenAI's are: `"3600"` is not a number, `1` is not a string. The same models
    are read back from DynamoDB, whose numbers are Decimals; those alone are converted first.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _stored_numbers(cls, data: Any) -> Any:
        return _from_dynamodb(data)


class ExpiresAfter(Strict):
    anchor: Literal["created_at"] = Field(description="Only `created_at` is supported.")
    seconds: int = Field(ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS, description="Lifetime in seconds.")


# Ids the service makes are under 64 characters; a client's are bounded before they reach a key or a message.
MAX_ID_CHARS = 128
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]

Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ],
    Field(max_length=16, description="Up to 16 pairs; keys up to 64 characters, values up to 512."),
]


# ---------------------------------------------------------------------------------------------- files


class FileObject(BaseModel):
    """OpenAI's File object."""

    id: str = Field(description="`file-…`")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None


class FileRecord(FileObject):
    """A File as kept in DynamoDB: the object, its owner and where its bytes are."""

    tenant_id: str
    s3_key: str


class Deleted(BaseModel):
    """Answer of a DELETE: `object` is the kind deleted."""

    id: str
    object: str
    deleted: bool = True


# -------------------------------------------------------------------------------------------- batches


class BatchCreate(Strict):
    """Body of POST /v1/batches."""

    input_file_id: ObjectId = Field(description="A file uploaded with purpose `batch`.")
    endpoint: CanonicalEndpoint = Field(description="The endpoint every request line calls.")
    completion_window: CompletionWindow = Field(description="`24h` (OpenAI semantics) or `unlimited`.")
    job_id: ObjectId = Field(description="The job (model, provider, SLA, price) that runs the batch.")
    metadata: Metadata | None = None
    output_expires_after: ExpiresAfter | None = None


class RequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class Usage(BaseModel):
    """Tokens of the answered requests; `input_tokens`/`output_tokens` mirror the first two for the SDK."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def input_tokens(self) -> int:
        """The openai SDK's name (BatchUsage) for prompt_tokens."""
        return self.prompt_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def output_tokens(self) -> int:
        """The openai SDK's name (BatchUsage) for completion_tokens."""
        return self.completion_tokens


# errors.data is kept on the batch item (DynamoDB: 400 KB an item) and sent in its EventBridge event
# (256 KB an entry): OpenAI's cap of 1,000 entries is not enough, since one entry may quote client
# values. Entries are kept, in order, while both the count and their encoded size fit.
MAX_ERRORS = 1000
MAX_ERRORS_BYTES = 160 * 1024
MAX_ERROR_MESSAGE_CHARS = 512


def _bounded_message(text: str) -> str:
    """At most MAX_ERROR_MESSAGE_CHARS, and writable as UTF-8 (a lone surrogate becomes U+FFFD)."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text if len(text) <= MAX_ERROR_MESSAGE_CHARS else text[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"


class BatchError(BaseModel):
    code: str
    line: int | None = None
    message: Annotated[str, AfterValidator(_bounded_message)] = Field(
        description=f"What is wrong, in at most {MAX_ERROR_MESSAGE_CHARS} characters."
    )
    param: str | None = None

    def encoded_size(self) -> int:
        """Bytes of this entry as compact UTF-8 JSON: more than DynamoDB or EventBridge count for it."""
        return len(self.model_dump_json().encode())


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError] = Field(
        default_factory=list,
        description=f"In line order; at most {MAX_ERRORS} entries (as OpenAI) and {MAX_ERRORS_BYTES} bytes "
        "of encoded entries in all: past either bound, the rest are not listed.",
    )


def bounded_errors(
    errors: Iterable[BatchError], *, max_count: int = MAX_ERRORS, max_bytes: int = MAX_ERRORS_BYTES
) -> list[BatchError]:
    """The longest prefix of `errors` within both bounds."""
    kept: list[BatchError] = []
    used = 0
    for error in errors:
        used += error.encoded_size() + 1  # and its comma
        if len(kept) >= max_count or used > max_bytes:
            break
        kept.append(error)
    return kept


class BatchObject(BaseModel):
    """OpenAI's Batch object, with Batchline's job, model, usage and cost."""

    id: str = Field(description="`batch_…`")
    object: Literal["batch"] = "batch"
    endpoint: Endpoint
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: CompletionWindow
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    metadata: dict[str, str] | None = None
    job_id: str
    model: str
    price_1m_tokens: float
    processing_cost: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    output_expires_after: ExpiresAfter | None = None


class Merged(BaseModel):
    """What finalize's merge wrote: the result files' sizes (0: not written) and what it counted itself.

    `unsent`: lines it answered as errors. `uncommitted`: the counts (request_counts and usage names) of
    segments a worker kept but never committed, which finalize merges and counts instead.
    """

    output_bytes: int = 0
    error_bytes: int = 0
    unsent: int = 0
    uncommitted: dict[str, int] = Field(default_factory=dict)
    # Set when planning never ran (a cancel or a fault came first): the lines finalize counted are the total.
    total: int | None = None
    # The input's bytes were gone: its unsent lines are answered without their custom_id, and the batch fails.
    input_missing: bool = False


class Closing(BaseModel):
    """Finalize's progress, kept on the batch so that a retried finalize resumes instead of starting over.

    Set once, when finalize closes the batch to workers; `merged` once, with the unsent lines' count.
    """

    status: Literal["completed", "failed", "cancelled", "expired"]
    unsent_code: str
    merged: Merged | None = None


class BatchRecord(BatchObject):
    """A Batch as kept in DynamoDB."""

    tenant_id: str
    inbox_key: str | None = Field(default=None, description="The S3 inbox object it came from, if any.")
    closing: Closing | None = Field(default=None, description="Set by finalize; no worker records after it.")
    enqueued: int = Field(
        default=0, description="Lines plan added to the tenant's enqueued count; closing removes them."
    )


# ----------------------------------------------------------------------------------------------- jobs


class OpenAIProvider(Strict):
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
    type: Literal["bedrock"]
    region: str = Field(min_length=1, max_length=32)
    model_id: str = Field(min_length=1, max_length=2048, description="A model id or ARN (Bedrock: at most 2048).")


class MockProvider(Strict):
    """Deterministic answers for demos and tests; never a real model."""

    type: Literal["mock"]
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    failure_rate: Annotated[float, AfterValidator(lambda v: round(v, 6))] = Field(default=0.0, ge=0.0, le=1.0)


Provider = Annotated[OpenAIProvider | BedrockProvider | MockProvider, Field(discriminator="type")]


class Sla(Strict):
    completion_window: CompletionWindow = "unlimited"
    max_concurrency: int = Field(default=50, ge=1, le=10_000, description="Requests in flight for a batch.")


class JobCreate(Strict):
    """Body of POST /v1/jobs (admin)."""

    tenant: ObjectId
    model: str = Field(min_length=1, max_length=256)
    provider: Provider
    use_case: str = Field(default="", max_length=1024)
    sla: Sla = Field(default_factory=Sla)
    allowed_endpoints: list[CanonicalEndpoint] = Field(default_factory=lambda: list(DEFAULT_ENDPOINTS))
    # DynamoDB stores magnitudes from 1e-130 to 1e126 only: bound and round what it will be asked to keep.
    price_1m_tokens: Annotated[float, AfterValidator(lambda v: round(v, 9))] = Field(
        default=0.0, ge=0.0, le=1_000_000.0, allow_inf_nan=False
    )


class Job(JobCreate):
    """A job as the API shows it and as DynamoDB keeps it."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="`job-…`")
    object: Literal["job"] = "job"
    created_at: int


# ------------------------------------------------------------------------------------- tenants, keys


# A tenant's enqueued requests can never exceed what one account's batches could hold.
MAX_ENQUEUED_REQUESTS = 1_000_000_000


class TenantLimits(BaseModel):
    """A tenant's own limits; null: the stack's default (its RequestsPerSecond, EnqueuedRequests)."""

    requests_per_second: int | None = Field(default=None, description="Requests per second per API key.")
    enqueued_requests: int | None = Field(
        default=None, description="Request lines the tenant's non-terminal batches may hold together."
    )


class TenantLimitsUpdate(Strict):
    """Limits as an admin sets them: whole numbers (`"5"` is refused, as 5.0 is)."""

    # One window item takes every request of its key in that second: DynamoDB writes one item at most
    # 1,000 times a second, so no key can be counted beyond that.
    requests_per_second: int | None = Field(default=None, strict=True, ge=1, le=1_000)
    enqueued_requests: int | None = Field(default=None, strict=True, ge=1, le=MAX_ENQUEUED_REQUESTS)


class TenantRecord(BaseModel):
    id: str
    object: Literal["tenant"] = "tenant"
    name: str
    created_at: int
    limits: TenantLimits = Field(default_factory=TenantLimits)


class TenantUpdate(Strict):
    """Body of PATCH /v1/admin/tenants/{tenant_id}: the limits given replace the tenant's; others stay."""

    limits: TenantLimitsUpdate


class TenantCreate(Strict):
    """Body of POST /v1/admin/tenants."""

    name: str = Field(min_length=1, max_length=256)


class ApiKeyRecord(BaseModel):
    """An API key as kept: only its keyed hash, never the key."""

    id: str
    tenant_id: str
    key_hash: str
    created_at: int


class ApiKeyObject(BaseModel):
    """An API key as the admin sees it; `key` is shown once, when it is created."""

    id: str
    object: Literal["api_key"] = "api_key"
    tenant_id: str
    created_at: int
    key: str | None = Field(default=None, description="The key itself: only in the answer that creates it.")


class TenantCreated(TenantRecord):
    api_key: ApiKeyObject


def public[T: BaseModel](model: type[T], record: BaseModel) -> T:
    """The API view of a stored record: only the fields `model` has (a record is a subclass of it)."""
    return model.model_validate(record.model_dump(include=set(model.model_fields)))


class Page[T](BaseModel):
    """OpenAI's list envelope."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
