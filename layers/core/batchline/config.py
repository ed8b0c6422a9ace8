"""Configuration: one pydantic-settings model per function, read from the environment the template sets."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from batchline.budget import Tuning

# The largest body POST /v1/files and an upload part accept (the template's MaxUploadBytes at most).
MAX_DIRECT_UPLOAD_BYTES = 4 * 1024 * 1024


class CoreSettings(BaseSettings):
    """What every function needs: where objects live."""

    # Built when a function first reads its settings: each function reads one of these models.
    model_config = SettingsConfigDict(frozen=True, defer_build=True)

    table_name: str = Field(min_length=1)
    bucket_name: str = Field(min_length=1)


class ApiSettings(CoreSettings):
    """The api function."""

    admin_key_secret: str = Field(min_length=1, description="Secrets Manager id of the admin API key.")
    key_hash_secret: str = Field(min_length=1, description="Secrets Manager id of the API-key hashing key.")
    idempotency_table: str = Field(min_length=1, description="Powertools Idempotency records of creates.")
    state_machine_arn: str = Field(min_length=1, description="The batch state machine; one execution per batch.")
    # Lambda takes an event of at most 6,291,456 bytes, and API Gateway base64-encodes a binary body
    # into it (4/3): 4 MiB becomes 5,592,408 bytes, leaving ~680 KiB for the multipart framing, the
    # headers (10 KiB at most) and the request context. Larger files use the other ways in.
    max_upload_bytes: int = Field(default=MAX_DIRECT_UPLOAD_BYTES, gt=0, le=MAX_DIRECT_UPLOAD_BYTES)
    # Lambda's 6 MB response cap, after base64: larger contents are answered with a redirect to S3.
    max_inline_content_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    requests_per_second: int = Field(gt=0, description="Requests per second per API key, unless its tenant's own.")
    provider_secret_prefix: str = Field(min_length=1, description="Jobs' api_key_secret names start with this.")
    allow_private_backends: bool = Field(description="Jobs may name loopback and private addresses.")


class PlanSettings(CoreSettings):
    """The plan function."""

    # A cap, as the template's LinesPerChunk: chunks are sized to the job's concurrency, up to this.
    lines_per_chunk: int = Field(default=50_000, ge=1, description="Most request lines per chunk (Map item).")
    requests_per_worker: int = Field(default=100, ge=1, le=256, description="Requests one worker keeps in flight.")
    worker_concurrency: int = Field(
        default=100, ge=1, le=10_000, description="Most worker invocations one batch runs at once (Map cap)."
    )
    enqueued_requests: int = Field(gt=0, description="Lines a tenant's non-terminal batches hold, unless its own.")


class WorkerSettings(CoreSettings):
    """The worker function."""

    requests_per_worker: int = Field(default=100, ge=1, le=256, description="Requests one worker keeps in flight.")
    request_timeout: float = Field(default=60.0, gt=0, description="Seconds one upstream attempt may take.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per line, the first included.")
    # Stop starting requests this long before the Lambda's own timeout, so that what is in flight
    # can finish and the segment can be written; the next invocation takes the rest.
    safety_margin: float = Field(default=15.0, ge=0, description="Seconds kept free at the end.")
    status_check_interval: float = Field(default=2.0, gt=0, description="Seconds between cancel checks.")
    # How often a worker records what it has answered (the template's CheckpointSeconds): counts and cost
    # move at this pace, and a worker that dies re-sends at most this long's lines plus those in flight.
    checkpoint_seconds: float = Field(default=10.0, gt=0, le=300, description="Seconds between checkpoints.")
    # How long a worker the job's budget gives no share has Step Functions wait before it asks again, at
    # least (the template's IdleWaitSeconds; worker.idle_wait makes it longer as the batch ages).
    idle_wait_seconds: int = Field(
        default=30, ge=1, le=3600, description="Seconds a worker with no share waits before it asks again."
    )
    # What a worker holds before it records it, whatever the time: one checkpoint's part files, at most.
    segment_bytes: int = Field(default=8 * 1024 * 1024, ge=1, description="Answer bytes per checkpoint, at most.")
    allow_private_backends: bool = Field(description="Upstreams may be loopback and private addresses.")
    # The job's concurrency budget (batchline.budget), renewed every status_check_interval.
    budget_lease_seconds: float = Field(
        default=30.0, gt=0, description="A worker's share of its job's budget lasts this long unless renewed."
    )
    budget_increase: float = Field(default=1.0, gt=0, description="Added to a job's limit per interval.")
    budget_decrease: float = Field(default=0.5, gt=0, lt=1, description="A job's limit's factor on congestion.")
    budget_latency_factor: float = Field(
        default=2.0, gt=1, description="A median latency over this many times the best seen is congestion."
    )
    budget_latency_floor: float = Field(
        default=0.05, ge=0, description="Seconds; latency below it never counts as rising."
    )

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> WorkerSettings:
        # A lease that ends before its next renewal would hand a live worker's share to others.
        if self.budget_lease_seconds <= 2 * self.status_check_interval:
            raise ValueError("budget_lease_seconds must be over twice status_check_interval.")
        return self

    def budget_tuning(self) -> Tuning:
        return Tuning(
            interval=self.status_check_interval,
            lease_seconds=self.budget_lease_seconds,
            increase=self.budget_increase,
            decrease=self.budget_decrease,
            latency_factor=self.budget_latency_factor,
            latency_floor=self.budget_latency_floor,
        )


class FinalizeSettings(CoreSettings):
    """The finalize function."""

    event_bus_name: str = Field(default="default", min_length=1)
    event_source: str = Field(default="batchline", min_length=1)


class IngestSettings(CoreSettings):
    """The ingest function."""

    state_machine_arn: str = Field(min_length=1)
