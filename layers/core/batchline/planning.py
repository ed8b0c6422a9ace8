"""Plan: validate a batch's input in one streamed pass and write its chunk manifest, or fail the batch."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from batchline.errors import Conflict, EnqueuedLimitReached, NotFound
from batchline.layout import manifest_key
from batchline.models import MAX_ENQUEUED_REQUESTS, BatchError, BatchErrors
from batchline.observability import logger
from batchline.store import Store
from batchline.validation import plan_batch


def map_concurrency(max_concurrency: int, requests_per_worker: int, worker_concurrency: int) -> int:
    """Chunks in flight so that all their workers together keep about the job's requests in flight.

    Never more than `worker_concurrency`: each chunk in flight is a worker invocation, and Lambda's
    concurrency is the account's, shared with every other function and batch.
    """
    wanted = math.ceil(max_concurrency / min(max_concurrency, requests_per_worker))
    return max(1, min(wanted, worker_concurrency))


def plan(
    store: Store,
    batch_id: str,
    *,
    lines_per_chunk: int,
    requests_per_worker: int,
    worker_concurrency: int = 100,
    enqueued_requests: int = MAX_ENQUEUED_REQUESTS,
) -> dict[str, Any]:
    """validating -> in_progress with a manifest, or -> failed with `errors.data`. Safe to run again.

    `enqueued_requests` is the stack's default for the lines a tenant's non-terminal batches hold; a
    tenant's own limit replaces it.
    """
    batch = store.batch_unscoped(batch_id)
    job = store.job(batch.job_id)
    answer: dict[str, Any] = {
        "status": batch.status,
        "manifest_key": manifest_key(batch_id),
        "max_concurrency": map_concurrency(job.sla.max_concurrency, requests_per_worker, worker_concurrency),
    }
    if batch.status != "validating":
        # A retry after the status change, or a cancel that came first: report where the batch is.
        return answer
    try:
        source = store.get_file(batch.tenant_id, batch.input_file_id)
    except NotFound:
        return _fail(store, batch_id, [BatchError(code="missing_input_file", message="The input file is gone.")])
    body = store.open_object(source.s3_key)
    try:
        result = plan_batch(
            body, endpoint=batch.endpoint, model=job.model, lines_per_chunk=lines_per_chunk, size=source.bytes
        )
    finally:
        body.close()
    logger.info("Planned", extra={"batch_id": batch_id, "requests": result.total, "problems": result.error_count})
    if not result.ok:
        return _fail(store, batch_id, result.errors)
    store.put_bytes(
        manifest_key(batch_id),
        json.dumps([asdict(chunk) for chunk in result.chunks]).encode(),
        content_type="application/json",
    )
    limit = store.get_tenant(batch.tenant_id).limits.enqueued_requests or enqueued_requests
    try:
        store.start_batch(batch, result.total, enqueued_limit=limit)
    except EnqueuedLimitReached as exc:
        # As OpenAI's enqueued limits: the batch fails in validation, with no line to blame.
        return _fail(store, batch_id, [BatchError(code="request_limit_exceeded", message=exc.message)])
    except Conflict:
        answer["status"] = store.batch_unscoped(batch_id).status
        return answer
    answer["status"] = "in_progress"
    return answer


def _fail(store: Store, batch_id: str, errors: list[BatchError]) -> dict[str, Any]:
    """The file's content is invalid: the batch fails with the problems listed, and runs nothing."""
    try:
        batch = store.set_batch_status(
            batch_id,
            "failed",
            allowed_from=["validating"],
            fields={"errors": BatchErrors(data=errors).model_dump()},
        )
    except Conflict:
        batch = store.batch_unscoped(batch_id)
    return {"status": batch.status, "manifest_key": None, "max_concurrency": 1}
