"""Batches: the rules of creation."""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from batchline import ids, jobs
from batchline.errors import Conflict, InvalidRequest, ServerError
from batchline.models import BatchCreate, BatchRecord
from batchline.runs import Runs
from batchline.store import Store

WINDOW_SECONDS = {"24h": 24 * 3600, "unlimited": None}


def create_batch(
    store: Store,
    runs: Runs,
    tenant_id: str,
    request: BatchCreate,
    *,
    batch_id: str | None = None,
    inbox_key: str | None = None,
) -> BatchRecord:
    """Check the request against the file and the job, store the batch in `validating`, start its run."""
    input_file = store.files.get(tenant_id, request.input_file_id, param="input_file_id")
    if input_file.purpose != "batch":
        raise InvalidRequest(
            f"File {input_file.id} has purpose '{input_file.purpose}'; a batch needs purpose 'batch'.",
            param="input_file_id",
        )
    job = jobs.job_for(store, tenant_id, request.job_id, request.endpoint)
    if request.endpoint not in job.allowed_endpoints:
        raise InvalidRequest(
            f"Job {job.id} does not allow {request.endpoint}; it allows {', '.join(job.allowed_endpoints)}.",
            param="endpoint",
        )
    now = int(time.time())
    window = WINDOW_SECONDS[request.completion_window]
    if window and input_file.expires_at is not None and input_file.expires_at < now + window:
        # Its bytes are kept while the batch uses it, but a file must not be gone to its owner before
        # the batch that reads it has to end: refuse it, as its expiry says it will not be there.
        raise InvalidRequest(
            f"File {input_file.id} expires at {input_file.expires_at}, before this batch's "
            f"{request.completion_window} window ends; upload it with a longer expires_after.",
            param="input_file_id",
        )
    record = BatchRecord(
        id=batch_id or ids.batch_id(),
        endpoint=request.endpoint,
        input_file_id=input_file.id,
        completion_window=request.completion_window,
        status="validating",
        created_at=now,
        expires_at=now + window if window else None,
        metadata=request.metadata,
        job_id=job.id,
        model=job.model,
        price_1m_tokens=job.price_1m_tokens,
        output_expires_after=request.output_expires_after,
        tenant_id=tenant_id,
        inbox_key=inbox_key,
    )
    store.batches.put(record)
    try:
        runs.start(record.id)
    except (ClientError, BotoCoreError) as exc:
        # Step Functions refused the start or never answered. The batch exists but cannot run: say so on the
        # batch, not by leaving it in `validating`. Anything else is a defect, and goes up as it is.
        store.batches.set_status(
            record.id,
            "failed",
            allowed_from=["validating"],
            fields={"errors": {"object": "list", "data": [{"code": "batch_start_failed", "line": None,
                    "message": "The batch could not be started; create it again.", "param": None}]}},
        )  # fmt: skip
        store.batches.release_input(record)
        store.files.restore_expiry(record.input_file_id)
        raise ServerError("The batch could not be started.") from exc
    return record


def cancel_batch(store: Store, tenant_id: str, batch_id: str) -> BatchRecord:
    """validating/in_progress -> cancelling (Batches.cancel); the run stops sending and finalizes as `cancelled`."""
    batch = store.batches.get(tenant_id, batch_id)
    if _cancelled_already(batch):
        return batch  # cancelling twice is not an error, as with OpenAI
    try:
        return store.batches.cancel(batch_id)
    except Conflict:
        # The batch moved since it was read: a concurrent cancel won (that is this cancel's answer too),
        # or finalize closed it (then it is ending, and the cancel comes too late).
        batch = store.batches.get_unscoped(batch_id)
        if _cancelled_already(batch):
            return batch
        raise Conflict(
            f"Cannot cancel a batch with status '{batch.status}'" + (", which is ending." if batch.closing else ".")
        ) from None


def _cancelled_already(batch: BatchRecord) -> bool:
    """A cancel has won already (finalize closes a cancelling batch only as cancelled)."""
    return batch.status in ("cancelling", "cancelled")
