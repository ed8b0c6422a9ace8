"""Batches: the create request, OpenAI's Batch object with Batchline's fields, the stored record and its segments."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, ConfigDict, Field, computed_field, model_validator

from batchline.models.common import (
    CanonicalEndpoint,
    CompletionWindow,
    Endpoint,
    ExpiresAfter,
    Metadata,
    Model,
    ObjectId,
    Strict,
    example,
)

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class BatchCreate(Strict):
    """Body of POST /v1/batches."""

    model_config = example(
        {
            "input_file_id": "file-abc123",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"team": "search"},
        }
    )

    input_file_id: ObjectId = Field(description="A file uploaded with purpose `batch`.")
    endpoint: CanonicalEndpoint = Field(description="The endpoint every request line calls.")
    completion_window: CompletionWindow = Field(description="`24h` (OpenAI semantics) or `unlimited`.")
    job_id: ObjectId | None = Field(
        default=None,
        description="The job (model, provider, SLA, price) that runs the batch. Without it: the tenant's default "
        "job, else its one job that allows the endpoint.",
    )
    metadata: Metadata | None = None
    output_expires_after: ExpiresAfter | None = None


class RequestCounts(Model):
    total: int = 0
    completed: int = 0
    failed: int = 0


class InputTokensDetails(Model):
    cached_tokens: int = Field(default=0, description="Of the prompt tokens, those read from the backend's cache.")


class OutputTokensDetails(Model):
    reasoning_tokens: int = Field(default=0, description="Of the completion tokens, those spent reasoning.")


class Usage(Model):
    """Tokens of the answered requests, in both vocabularies: the contract's `prompt_tokens`/`completion_tokens`
    and the openai SDK's BatchUsage (`input_tokens`, `output_tokens` and their details), the same numbers."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)

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


# Each token count a segment keeps and a batch sums, and where it is summed on the batch item.
USAGE_PATHS = {
    "prompt_tokens": "usage.prompt_tokens",
    "completion_tokens": "usage.completion_tokens",
    "total_tokens": "usage.total_tokens",
    "cached_tokens": "usage.input_tokens_details.cached_tokens",
    "reasoning_tokens": "usage.output_tokens_details.reasoning_tokens",
}


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


class BatchError(Model):
    code: str
    line: int | None = None
    message: Annotated[str, AfterValidator(_bounded_message)] = Field(
        description=f"What is wrong, in at most {MAX_ERROR_MESSAGE_CHARS} characters."
    )
    param: str | None = None

    def encoded_size(self) -> int:
        """Bytes of this entry as compact UTF-8 JSON: more than DynamoDB or EventBridge count for it."""
        return len(self.model_dump_json().encode())


class BatchErrors(Model):
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


# Money is stated to 1e-10 USD: a ten-thousandth of a token at the cheapest prices, and far below a cent.
COST_QUANTUM = Decimal("1e-10")


def processing_cost(total_tokens: int, price_1m_tokens: float) -> float:
    """What `total_tokens` cost at `price_1m_tokens` USD per million, computed in decimal and rounded to
    COST_QUANTUM: 304 tokens at 0.2 are 6.08e-05, not the float product's 6.080000000000001e-05. Tokens are
    summed across segments as integers first, so the cost is exact however the batch was split."""
    exact = Decimal(total_tokens) * Decimal(str(price_1m_tokens)) / 1_000_000
    return float(exact.quantize(COST_QUANTUM))


class BatchObject(Model):
    """OpenAI's Batch object, with Batchline's job, model, usage and cost."""

    model_config = example(
        {
            "id": "batch_abc123",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": "file-abc123",
            "completion_window": "24h",
            "status": "completed",
            "output_file_id": "file-out456",
            "error_file_id": None,
            "created_at": 1764547200,
            "in_progress_at": 1764547202,
            "expires_at": 1764633600,
            "finalizing_at": 1764547500,
            "completed_at": 1764547505,
            "request_counts": {"total": 100, "completed": 100, "failed": 0},
            "metadata": {"team": "search"},
            "job_id": "job-1a2b3c4d",
            "model": "llama-3.1-8b",
            "price_1m_tokens": 0.2,
            "processing_cost": 0.00304,
            "usage": {
                "prompt_tokens": 9000,
                "completion_tokens": 6200,
                "total_tokens": 15200,
                "input_tokens": 9000,
                "output_tokens": 6200,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )

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
    processing_cost: float = Field(default=0.0, description="USD, to 1e-10: total_tokens x price_1m_tokens / 1e6.")
    usage: Usage = Field(default_factory=Usage)
    output_expires_after: ExpiresAfter | None = None

    @model_validator(mode="after")
    def _live_cost(self) -> Self:
        # Usage is live (each worker checkpoint adds to it), so the cost is derived from it, never stored
        # apart: a running batch shows what it has cost so far, and it always equals its usage.
        self.processing_cost = processing_cost(self.usage.total_tokens, self.price_1m_tokens)
        return self


class Merged(Model):
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


class Closing(Model):
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


class SegmentRecord(Model):
    """The lines one worker invocation answered, [cursor, next_cursor) of one chunk, as kept in DynamoDB.

    `pending` until the transaction that adds its counts to the batch commits it; finalize merges its
    part files (`out_key`, `err_key`: None when it had no such lines) either way.
    """

    model_config = ConfigDict(extra="ignore")

    batch_id: str
    chunk: int
    cursor: int
    next_cursor: int
    # The input byte past its last line: where the next invocation reads from.
    next_offset: int
    done: bool
    out_key: str | None = None
    err_key: str | None = None
    completed: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # The order of its lines across the two parts: run lengths, alternately of output lines and of error
    # lines, output first (so a segment starting with an error line starts with 0). None in older records:
    # read them as every output line, then every error line.
    runs: list[int] | None = None
    pending: bool = False
