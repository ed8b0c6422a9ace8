"""The S3 inbox: an object put at inbox/<job_id>/<name>.jsonl becomes a File and a Batch of that job's tenant.

S3 events arrive at least once, so ids derive from the bucket, key and version (or ETag): a repeated
event finds its batch and only makes sure its run was started.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from itertools import islice
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from batchline import batches, files, ids, layout
from batchline.data.objects import Objects
from batchline.errors import Conflict
from batchline.jsonl import iter_request_lines, parse_request_line
from batchline.models import BatchCreate
from batchline.observability import logger
from batchline.runs import Runs
from batchline.store import Store

METADATA_PREFIX = "metadata-"


class Rejected(Exception):
    """An inbox object that can never become a batch (no such job, bad metadata); retrying will not help."""


@dataclass(frozen=True)
class InboxObject:
    """One object an S3 event names."""

    bucket: str
    key: str
    version_id: str | None
    etag: str

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes this put unique: a new put of the same key is a new version (or a new ETag)."""
        return self.bucket, self.key, self.version_id or self.etag


def objects(s3_event: dict[str, Any]) -> list[InboxObject]:
    """The objects of an S3 event; S3's test event has none."""
    found = []
    for record in s3_event.get("Records", []):
        s3 = record.get("s3", {})
        obj = s3.get("object", {})
        found.append(
            InboxObject(
                bucket=s3.get("bucket", {}).get("name", ""),
                key=unquote_plus(obj.get("key", "")),  # keys arrive URL-encoded
                version_id=obj.get("versionId") or None,
                etag=obj.get("eTag", ""),
            )
        )
    return found


def ingest(store: Store, runs: Runs, obj: InboxObject) -> str:
    """Make (or find) the batch for one inbox object and make sure it runs; its id."""
    key = obj.key
    parts = PurePosixPath(key).parts
    if len(parts) < 3 or parts[0] != layout.INBOX.rstrip("/") or not key.endswith(layout.INBOX_SUFFIX):
        raise Rejected(f"Not an inbox batch file: {key}")
    job_id = parts[1]
    batch_id = ids.derived_batch_id(*obj.identity)
    if store.batches.exists(batch_id):
        runs.start(batch_id)
        return batch_id
    job = store.jobs.get_live(job_id)
    if job is None:
        raise Rejected(f"No such job (or retired): {job_id}")
    inbox = store.objects.in_bucket(obj.bucket)
    head = inbox.head(key, version_id=obj.version_id)
    meta: dict[str, str] = head.get("Metadata", {})
    file_id = ids.derived_file_id(*obj.identity)
    record = files.new_record(job.tenant_id, filename=PurePosixPath(key).name, purpose="batch",
                              size=int(head["ContentLength"]), file_id=file_id)  # fmt: skip
    store.objects.copy(key, record.s3_key, source_bucket=obj.bucket, source_version=obj.version_id)
    with contextlib.suppress(Conflict):  # a repeated event got this far before
        store.files.put(record)
    try:
        # Validated as a client's body is: the object's metadata is the client's input here.
        request = BatchCreate.model_validate(
            {
                "input_file_id": file_id,
                "endpoint": meta.get("endpoint") or _first_url(inbox, key, obj.version_id) or job.allowed_endpoints[0],
                "completion_window": job.sla.completion_window,
                "job_id": job.id,
                "metadata": {
                    k.removeprefix(METADATA_PREFIX): v for k, v in meta.items() if k.startswith(METADATA_PREFIX)
                }
                or None,
            }
        )
    except ValidationError as exc:
        raise Rejected(f"Invalid batch for {key}: {exc.errors()[0]['msg']}") from exc
    try:
        batches.create_batch(store, runs, job.tenant_id, request, batch_id=batch_id, inbox_key=key)
    except Conflict:
        runs.start(batch_id)  # a concurrent delivery of the same event created it
    logger.info("Inbox batch", extra={"batch_id": batch_id, "key": key, "tenant_id": job.tenant_id})
    return batch_id


def _first_url(inbox: Objects, key: str, version_id: str | None) -> str | None:
    """The `url` of the inbox object's first request line, read without fetching the whole object.

    Read from the inbox object itself, not its copy under files/: the ingest function may read only the inbox.
    """
    body = inbox.open(key, version_id=version_id)
    try:
        for _, _, raw in islice(iter_request_lines(body), 1):
            with contextlib.suppress(ValueError):
                url = parse_request_line(raw).get("url")
                return url if isinstance(url, str) else None
    finally:
        body.close()
    return None
