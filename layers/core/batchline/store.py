"""The data-access layer: DynamoDB items and S3 objects. Every status change is a conditional write.

One table. Each object is addressed by its own id (`pk` = id, `sk` = kind), so a worker or an admin
can read it without knowing its tenant; reads on behalf of a tenant check ownership and answer
NotFound for anyone else's object. `gsi1` lists a tenant's objects of one kind in creation order.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel

from batchline.config import CoreSettings
from batchline.errors import BatchlineError, Conflict, EnqueuedLimitReached, InvalidRequest, NotFound, ServerError
from batchline.models import ApiKeyRecord, BatchRecord, Closing, FileRecord, Job, Merged, TenantRecord

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

KEY_ATTRS = ("pk", "sk")
INDEX_NAME = "gsi1"
INDEX_ATTRS = ("gsi1pk", "gsi1sk")
TTL_ATTR = "ttl"
# Segment records only matter until the batch is finalized; keep them a while for inspection.
SEGMENT_TTL_SECONDS = 14 * 24 * 3600
ADMIN_OWNER = "admin"
# Why DynamoDB cancels a transaction that the same transaction, tried again later, may pass.
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
# DynamoDB's limit for a partition key value (2048) less room for the prefixes some keys carry.
MAX_KEY_BYTES = 1024

_NAMES = {
    "file": "File",
    "batch": "Batch",
    "job": "Job",
    "tenant": "Tenant",
    "key": "API key",
    "upload": "Upload",
}


# SigV4 for presigned links: what S3 requires in every region, and what carries X-Amz-Expires.
# Virtual-hosted on the regional endpoint: botocore presigns for the global s3.amazonaws.com
# otherwise, which redirects for up to a day for a new bucket outside us-east-1. (A custom
# endpoint given by IP, as the local cloud's, keeps path-style addressing.)
S3_CONFIG = Config(
    signature_version="s3v4",
    s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
)


def to_item(model: BaseModel) -> dict[str, Any]:
    """A model as a DynamoDB item (numbers as Decimal, which boto3 requires)."""
    return json.loads(model.model_dump_json(), parse_float=Decimal)  # type: ignore[no-any-return]


def absent(name: str) -> ConditionBase:
    """The attribute is not there: never written, or written as null (a model's None)."""
    return Attr(name).not_exists() | Attr(name).attribute_type("NULL")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Store:
    """DynamoDB and S3 access for one table and one bucket; clients are created on first use."""

    def __init__(self, table_name: str, bucket_name: str, *, dynamodb: Any = None, s3: Any = None) -> None:
        self.table_name = table_name
        self.bucket_name = bucket_name
        self._dynamodb = dynamodb
        self._s3 = s3

    @classmethod
    def for_settings(cls, settings: CoreSettings) -> Store:
        """The store of a function's configured table and bucket."""
        return cls(settings.table_name, settings.bucket_name)

    @cached_property
    def table(self) -> Any:
        return (self._dynamodb or boto3.resource("dynamodb")).Table(self.table_name)

    @cached_property
    def s3(self) -> Any:
        return self._s3 or boto3.client("s3", config=S3_CONFIG)

    # ------------------------------------------------------------------------------------- generic

    @staticmethod
    def item(kind: str, model: BaseModel, *, owner: str | None) -> dict[str, Any]:
        """The stored form of an object: addressed by id, listed under its owner in creation order."""
        item = to_item(model)
        item.update(pk=item["id"], sk=kind)
        if owner is not None:
            item.update(gsi1pk=f"{owner}#{kind}", gsi1sk=f"{_now_ms():013d}#{item['id']}")
        # DynamoDB's TTL removes an expired object's record; the sweeper then removes its bytes.
        if isinstance(item.get("expires_at"), int | Decimal) and kind == "file":
            item[TTL_ATTR] = item["expires_at"]
        return item

    def put_new(self, kind: str, model: BaseModel, *, owner: str | None) -> None:
        item = self.item(kind, model, owner=owner)
        try:
            self.table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(f"{_NAMES.get(kind, kind)} {item['id']} already exists.") from exc
            raise

    def update(
        self,
        kind: str,
        object_id: str,
        *,
        set_: dict[str, Any] | None = None,
        add: dict[str, int | float] | None = None,
        condition: ConditionBase | None = None,
        conflict: str | BatchlineError = "The object changed state; try again.",
    ) -> dict[str, Any]:
        """One conditional write: SET and ADD attributes; the item as it is afterwards.

        A failed condition (or a missing item) raises `conflict` (a message makes it a Conflict).
        """
        names: dict[str, str] = {}
        values: dict[str, Any] = {}

        def path(tag: str, name: str) -> str:
            # A dotted name is a path into a map (request_counts.failed), one placeholder per part.
            parts = []
            for j, part in enumerate(name.split(".")):
                names[f"#{tag}_{j}"] = part
                parts.append(f"#{tag}_{j}")
            return ".".join(parts)

        sets, adds = [], []
        for i, (name, value) in enumerate((set_ or {}).items()):
            values[f":s{i}"] = json.loads(json.dumps(value), parse_float=Decimal)
            sets.append(f"{path(f's{i}', name)} = :s{i}")
        for i, (name, value) in enumerate((add or {}).items()):
            values[f":a{i}"] = Decimal(str(value))
            adds.append(f"{path(f'a{i}', name)} :a{i}")
        expression = " ".join(
            part for part in (sets and "SET " + ", ".join(sets), adds and "ADD " + ", ".join(adds)) if part
        )
        exists = Attr("pk").exists()
        try:
            answer = self.table.update_item(
                Key={"pk": object_id, "sk": kind},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=exists & condition if condition is not None else exists,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise (Conflict(conflict) if isinstance(conflict, str) else conflict) from exc
            raise
        return answer["Attributes"]  # type: ignore[no-any-return]

    def delete(self, kind: str, object_id: str) -> None:
        self.table.delete_item(Key={"pk": object_id, "sk": kind})

    def _transact(self, *actions: tuple[str, dict[str, Any]]) -> list[str | None]:
        """Write every action or none: [] when written, else each action's cancellation reason code.

        Actions are (verb, parameters) such as ("Put", {"Item": ..., "ConditionExpression": ...}); the
        resource's client serializes plain Python values, as the Table does.
        """
        try:
            self.table.meta.client.transact_write_items(
                TransactItems=[{verb: {"TableName": self.table_name, **params}} for verb, params in actions]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return [r.get("Code") for r in exc.response.get("CancellationReasons", [])] or [None]
        return []

    def get_raw(self, kind: str, object_id: str) -> dict[str, Any] | None:
        if not object_id or len(object_id.encode()) > MAX_KEY_BYTES:
            return None  # no object has such an id, and DynamoDB would refuse it as a key
        item: dict[str, Any] | None = self.table.get_item(Key={"pk": object_id, "sk": kind}).get("Item")
        return item

    def get_owned(self, kind: str, tenant_id: str, object_id: str, *, param: str = "id") -> dict[str, Any]:
        item = self.get_raw(kind, object_id)
        if item is None or item.get("tenant_id", item.get("tenant")) != tenant_id:
            raise NotFound(f"No such {_NAMES.get(kind, kind)} object: {object_id}", param=param)
        return item

    def list_owned(
        self,
        kind: str,
        owner: str,
        *,
        after: str | None,
        limit: int,
        newest_first: bool,
        filter_: ConditionBase | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of an owner's objects and whether more follow; `after` is the last id seen."""
        query: dict[str, Any] = {
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": Key("gsi1pk").eq(f"{owner}#{kind}"),
            "ScanIndexForward": not newest_first,
        }
        if filter_ is not None:
            query["FilterExpression"] = filter_
        if after:
            cursor = self.get_raw(kind, after)
            if cursor is None or cursor.get("gsi1pk") != f"{owner}#{kind}":
                raise InvalidRequest(f"Invalid 'after': {after} is not an id from this list.", param="after")
            query["ExclusiveStartKey"] = {k: cursor[k] for k in (*KEY_ATTRS, *INDEX_ATTRS)}
        items: list[dict[str, Any]] = []
        # One item more than asked tells whether another page exists; a filter may need several queries.
        while len(items) <= limit:
            page = self.table.query(Limit=limit + 1 - len(items), **query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[:limit], len(items) > limit

    # --------------------------------------------------------------------------------------- files

    def put_file(self, record: FileRecord) -> None:
        self.put_new("file", record, owner=record.tenant_id)

    def get_file(self, tenant_id: str, file_id: str, *, param: str = "id") -> FileRecord:
        """A tenant's file; an expired one is gone, whether or not TTL has removed it yet."""
        record = FileRecord.model_validate(self.get_owned("file", tenant_id, file_id, param=param))
        if record.expires_at is not None and record.expires_at <= time.time():
            raise NotFound(f"No such File object: {file_id}", param=param)
        return record

    def list_files(
        self, tenant_id: str, *, after: str | None, limit: int, newest_first: bool, purpose: str | None
    ) -> tuple[list[FileRecord], bool]:
        live = Attr("expires_at").attribute_type("NULL") | Attr("expires_at").gt(int(time.time()))
        filter_ = live & Attr("purpose").eq(purpose) if purpose else live
        items, more = self.list_owned(
            "file", tenant_id, after=after, limit=limit, newest_first=newest_first, filter_=filter_
        )
        return [FileRecord.model_validate(i) for i in items], more

    def delete_file(self, tenant_id: str, file_id: str) -> FileRecord:
        """Delete a file's record, then its bytes; refused while a running batch uses it."""
        record = self.get_file(tenant_id, file_id)
        unused = Attr("in_use").not_exists() | Attr("in_use").lte(0)
        try:
            self.table.delete_item(
                Key={"pk": file_id, "sk": "file"},
                ConditionExpression=Attr("tenant_id").eq(tenant_id) & unused,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(f"File {file_id} is the input of a batch that is still running.") from exc
            raise
        self.delete_object(record.s3_key)
        return record

    # ------------------------------------------------------------------------------------- batches

    def put_batch(self, record: BatchRecord) -> None:
        """Store a new batch and mark its input file in use, together: the file cannot vanish under it."""
        reasons = self._transact(
            (
                "Update",
                {
                    "Key": {"pk": record.input_file_id, "sk": "file"},
                    # No TTL while in use: DynamoDB would remove the record, and the sweeper the bytes the
                    # batch still reads. The last batch to release it puts its expiry back (restore_expiry).
                    "UpdateExpression": "ADD in_use :one REMOVE #ttl",
                    "ConditionExpression": "tenant_id = :tenant",
                    "ExpressionAttributeNames": {"#ttl": TTL_ATTR},
                    "ExpressionAttributeValues": {":one": 1, ":tenant": record.tenant_id},
                },
            ),
            (
                "Put",
                {
                    "Item": self.item("batch", record, owner=record.tenant_id),
                    "ConditionExpression": "attribute_not_exists(pk)",
                },
            ),
        )
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise NotFound(f"No such File object: {record.input_file_id}", param="input_file_id")
        if reasons:
            raise Conflict(f"Batch {record.id} already exists.")

    def batch_unscoped(self, batch_id: str) -> BatchRecord:
        """A batch by id alone, whatever its tenant: for the run's own functions (its execution is named by it)."""
        item = self.table.get_item(Key={"pk": batch_id, "sk": "batch"}, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound(f"No such Batch object: {batch_id}", param="id")
        return BatchRecord.model_validate(item)

    def set_batch_status(
        self, batch_id: str, status: str, *, allowed_from: Iterable[str], fields: dict[str, Any] | None = None
    ) -> BatchRecord:
        """One conditional status change, stamping `<status>_at`; Conflict if the batch moved on."""
        allowed = list(allowed_from)
        item = self.update(
            "batch",
            batch_id,
            set_={"status": status, f"{status}_at": int(time.time()), **(fields or {})},
            condition=Attr("status").is_in(allowed),
            conflict=f"Batch {batch_id} is no longer in {', '.join(allowed)}.",
        )
        return BatchRecord.model_validate(item)

    def start_batch(self, batch: BatchRecord, total: int, *, enqueued_limit: int) -> BatchRecord:
        """Plan's end: validating -> in_progress, its lines added to the tenant's enqueued count, together.

        Conflict if the batch moved on (cancelled, closed, planned by a twin); EnqueuedLimitReached if the
        tenant's non-terminal batches would hold more than `enqueued_limit` lines. One transaction: the
        lines are counted exactly when the status changes, so a plan run again never counts them twice.
        """
        moved = Conflict(f"Batch {batch.id} is no longer in validating.")
        if total > enqueued_limit:
            raise EnqueuedLimitReached(enqueued_limit)
        now = int(time.time())
        reasons = self._transact(
            (
                "Update",
                {
                    "Key": {"pk": batch.id, "sk": "batch"},
                    "UpdateExpression": "SET #status = :to, in_progress_at = :now, request_counts = :counts, "
                    "enqueued = :n",
                    "ConditionExpression": "#status = :from AND (attribute_not_exists(closing) "
                    "OR attribute_type(closing, :null))",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":to": "in_progress",
                        ":from": "validating",
                        ":now": now,
                        ":counts": {"total": total, "completed": 0, "failed": 0},
                        ":n": total,
                        ":null": "NULL",
                    },
                },
            ),
            (
                "Update",
                {
                    "Key": {"pk": batch.tenant_id, "sk": "tenant"},
                    "UpdateExpression": "ADD enqueued :n",
                    "ConditionExpression": "attribute_exists(pk) AND "
                    "(attribute_not_exists(enqueued) OR enqueued <= :room)",
                    "ExpressionAttributeValues": {":n": total, ":room": enqueued_limit - total},
                },
            ),
        )
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise moved
        if reasons and reasons[1:2] == ["ConditionalCheckFailed"]:
            raise EnqueuedLimitReached(enqueued_limit)
        if reasons:
            # A transient conflict or throttling: the function fails and Step Functions retries it.
            raise ServerError(f"Starting batch {batch.id} failed: {reasons}")
        return self.batch_unscoped(batch.id)

    def close_batch(self, batch: BatchRecord, closing: Closing) -> BatchRecord:
        """Finalize's first step: no worker records from now on; a running batch shows `finalizing`.

        The batch's enqueued lines leave the tenant's count in the same write, so exactly once however
        often finalize runs. Conflict if the batch is no longer in the status it was read in, or another
        finalize closed it first.
        """
        from_status = batch.status
        set_: dict[str, Any] = {"closing": closing.model_dump()}
        if from_status == "in_progress":
            set_ |= {"status": "finalizing", "finalizing_at": int(time.time())}
        conflict = f"Batch {batch.id} is no longer in {from_status}, or it is closed already."
        if not batch.enqueued:
            item = self.update(
                "batch",
                batch.id,
                set_=set_,
                condition=Attr("status").eq(from_status) & absent("closing"),
                conflict=conflict,
            )
            return BatchRecord.model_validate(item)
        names = {f"#s{i}": name for i, name in enumerate(set_)}
        values: dict[str, Any] = {f":s{i}": value for i, value in enumerate(set_.values())}
        values |= {":from": from_status, ":n": batch.enqueued, ":null": "NULL"}
        reasons = self._transact(
            (
                "Update",
                {
                    "Key": {"pk": batch.id, "sk": "batch"},
                    "UpdateExpression": "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_))),
                    # enqueued: what plan added is what leaves (it never changes after plan).
                    "ConditionExpression": "#status = :from AND enqueued = :n AND "
                    "(attribute_not_exists(closing) OR attribute_type(closing, :null))",
                    "ExpressionAttributeNames": names | {"#status": "status"},
                    "ExpressionAttributeValues": values,
                },
            ),
            (
                "Update",
                {
                    "Key": {"pk": batch.tenant_id, "sk": "tenant"},
                    "UpdateExpression": "ADD enqueued :minus",
                    "ExpressionAttributeValues": {":minus": -batch.enqueued},
                },
            ),
        )
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise Conflict(conflict)
        if reasons:
            raise ServerError(f"Closing batch {batch.id} failed: {reasons}")
        return self.batch_unscoped(batch.id)

    def record_merge(self, batch_id: str, merged: Merged) -> BatchRecord:
        """Record the merge's result and add what it counted itself, once, in one write."""
        late = merged.uncommitted
        add = {
            "request_counts.completed": late.get("completed", 0),
            "request_counts.failed": merged.unsent + late.get("failed", 0),
            **{f"usage.{name}": late.get(name, 0) for name in ("prompt_tokens", "completion_tokens", "total_tokens")},
        }
        set_: dict[str, Any] = {"closing.merged": merged.model_dump()}
        if merged.total is not None:
            set_["request_counts.total"] = merged.total  # planning never ran; finalize counted the lines
        item = self.update(
            "batch",
            batch_id,
            set_=set_,
            add={name: value for name, value in add.items() if value} or None,
            condition=Attr("closing").attribute_type("M") & absent("closing.merged"),
            conflict=f"Batch {batch_id}'s merge is recorded already.",
        )
        return BatchRecord.model_validate(item)

    def release_input(self, batch: BatchRecord) -> bool:
        """Once per batch, whatever retries: its input file is no longer in use. False if already done."""
        reasons = self._transact(
            (
                "Update",
                {
                    "Key": {"pk": batch.id, "sk": "batch"},
                    "UpdateExpression": "SET released = :yes",
                    "ConditionExpression": "attribute_not_exists(released)",
                    "ExpressionAttributeValues": {":yes": True},
                },
            ),
            (
                "Update",
                {
                    "Key": {"pk": batch.input_file_id, "sk": "file"},
                    "UpdateExpression": "ADD in_use :minus",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":minus": -1},
                },
            ),
        )
        return not reasons

    def restore_expiry(self, file_id: str) -> None:
        """Give a file its TTL back once no batch uses it (safe to repeat; a no-op while one still does).

        A file past its expiry is then removed by TTL, and its bytes by the sweeper, as any other.
        """
        try:
            self.table.update_item(
                Key={"pk": file_id, "sk": "file"},
                UpdateExpression="SET #ttl = expires_at",
                ConditionExpression=Attr("pk").exists()
                & (Attr("in_use").not_exists() | Attr("in_use").lte(0))
                & Attr(TTL_ATTR).not_exists()
                & Attr("expires_at").attribute_type("N"),
                ExpressionAttributeNames={"#ttl": TTL_ATTR},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # ------------------------------------------------------------------------------ run segments
    # A segment is the lines one worker invocation answered: [cursor, next_cursor) of one chunk.
    # Its record is written once, with the batch's counters, in one transaction: that write is what
    # makes the segment's part files count, so a retried invocation can neither lose nor double a line.

    @staticmethod
    def _segments_pk(batch_id: str) -> str:
        return f"{batch_id}#segments"

    @staticmethod
    def _segment_sk(chunk: int, cursor: int) -> str:
        return f"{int(chunk):06d}#{int(cursor):06d}"  # ints, or the Decimals of an item read back

    def get_segment(self, batch_id: str, chunk: int, cursor: int) -> dict[str, Any] | None:
        key = {"pk": self._segments_pk(batch_id), "sk": self._segment_sk(chunk, cursor)}
        item: dict[str, Any] | None = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return item

    def put_segment(self, batch_id: str, segment: dict[str, Any]) -> dict[str, Any] | None:
        """Keep what an invocation answered, `pending` until committed; None, or the segment already there.

        Its own item, so no other writer contends for it: once it is kept, a commit that fails never
        makes the lines go upstream again (the next invocation, or finalize, commits what is kept).
        """
        item = {
            "pk": self._segments_pk(batch_id),
            "sk": self._segment_sk(segment["chunk"], segment["cursor"]),
            "ttl": int(time.time()) + SEGMENT_TTL_SECONDS,
            **segment,
            "pending": True,
        }
        try:
            self.table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get_segment(batch_id, segment["chunk"], segment["cursor"])
        return None

    def commit_segment(self, batch_id: str, segment: dict[str, Any]) -> str:
        """Mark a kept segment committed and add its counts to the batch, together.

        Answers `recorded`; `duplicate` if it was committed before; `closed` if the batch no longer takes
        segments (finalize closed it: it merges what is kept itself); `retry` if DynamoDB cancelled the
        transaction for a conflict or throttling, which a later try may pass.
        """
        counters = {
            "#rc.#done": ("completed", segment["completed"]),
            "#rc.#failed": ("failed", segment["failed"]),
            "#u.#p": ("prompt_tokens", segment.get("prompt_tokens", 0)),
            "#u.#c": ("completion_tokens", segment.get("completion_tokens", 0)),
            "#u.#t": ("total_tokens", segment.get("total_tokens", 0)),
        }
        reasons = self._transact(
            (
                "Update",
                {
                    "Key": {
                        "pk": self._segments_pk(batch_id),
                        "sk": self._segment_sk(segment["chunk"], segment["cursor"]),
                    },
                    "UpdateExpression": "REMOVE pending",
                    "ConditionExpression": "attribute_exists(pending)",
                },
            ),
            (
                "Update",
                {
                    "Key": {"pk": batch_id, "sk": "batch"},
                    "UpdateExpression": "ADD " + ", ".join(f"{path} :{name}" for path, (name, _) in counters.items()),
                    "ExpressionAttributeNames": {
                        "#rc": "request_counts",
                        "#u": "usage",
                        "#status": "status",
                        "#closing": "closing",
                    }
                    | {path.split(".")[1]: name for path, (name, _) in counters.items()},
                    "ExpressionAttributeValues": {f":{name}": value for name, value in counters.values()}
                    | {":running": "in_progress", ":cancelling": "cancelling", ":null": "NULL"},
                    # A cancelling batch is still open to workers until finalize closes it.
                    "ConditionExpression": "#status IN (:running, :cancelling)"
                    " AND (attribute_not_exists(#closing) OR attribute_type(#closing, :null))",
                },
            ),
        )
        if not reasons:
            return "recorded"
        if reasons[0] == "ConditionalCheckFailed":
            return "duplicate"
        if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            return "closed"
        if set(reasons) <= {"None", None, *RETRYABLE_REASONS}:
            return "retry"
        raise ServerError(f"Recording a segment of {batch_id} failed: {reasons}")

    def segments(self, batch_id: str) -> list[dict[str, Any]]:
        """Every kept segment of a batch (committed, or `pending` until it is), in chunk then cursor order."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(self._segments_pk(batch_id)),
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self.table.query(**query)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_batches(self, tenant_id: str, *, after: str | None, limit: int) -> tuple[list[BatchRecord], bool]:
        items, more = self.list_owned("batch", tenant_id, after=after, limit=limit, newest_first=True)
        return [BatchRecord.model_validate(i) for i in items], more

    def get_batch(self, tenant_id: str, batch_id: str, *, param: str = "id") -> BatchRecord:
        return BatchRecord.model_validate(self.get_owned("batch", tenant_id, batch_id, param=param))

    # ---------------------------------------------------------------------------------------- jobs

    def put_job(self, job: Job) -> None:
        self.put_new("job", job, owner=job.tenant)

    def job(self, job_id: str) -> Job:
        """A job by id alone, retired or not: a running batch keeps the job it started with."""
        item = self.get_raw("job", job_id)
        if item is None:
            raise NotFound(f"No such Job object: {job_id}", param="job_id")
        return Job.model_validate(item)

    def get_job(self, tenant_id: str, job_id: str, *, param: str = "id") -> Job:
        item = self.get_owned("job", tenant_id, job_id, param=param)
        if item.get("deleted_at") is not None:
            raise NotFound(f"No such Job object: {job_id}", param=param)
        return Job.model_validate(item)

    def list_jobs(self, tenant_id: str, *, after: str | None, limit: int) -> tuple[list[Job], bool]:
        items, more = self.list_owned(
            "job",
            tenant_id,
            after=after,
            limit=limit,
            newest_first=True,
            filter_=Attr("deleted_at").not_exists(),
        )
        return [Job.model_validate(i) for i in items], more

    def delete_job(self, job_id: str, now: int) -> None:
        """Retire a job: new batches cannot use it; batches already running keep their job."""
        self.update(
            "job",
            job_id,
            set_={"deleted_at": now},
            condition=Attr("deleted_at").not_exists(),
            conflict=NotFound(f"No such Job object: {job_id}", param="id"),
        )

    # ------------------------------------------------------------------------------- tenants, keys

    def put_tenant(self, tenant: TenantRecord) -> None:
        self.put_new("tenant", tenant, owner=ADMIN_OWNER)

    def get_tenant(self, tenant_id: str, *, param: str = "id") -> TenantRecord:
        item = self.get_raw("tenant", tenant_id)
        if item is None:
            raise NotFound(f"No such Tenant object: {tenant_id}", param=param)
        return TenantRecord.model_validate(item)

    def set_tenant_limits(self, tenant_id: str, limits: dict[str, int | None]) -> TenantRecord:
        """Replace the limits named in `limits` (None: back to the stack's default); the others stay."""
        tenant = self.get_tenant(tenant_id)
        merged = tenant.limits.model_copy(update=limits)
        item = self.update(
            "tenant",
            tenant_id,
            set_={"limits": merged.model_dump()},
            conflict=NotFound(f"No such Tenant object: {tenant_id}", param="tenant_id"),
        )
        return TenantRecord.model_validate(item)

    def list_tenants(self, *, after: str | None, limit: int) -> tuple[list[TenantRecord], bool]:
        items, more = self.list_owned("tenant", ADMIN_OWNER, after=after, limit=limit, newest_first=True)
        return [TenantRecord.model_validate(i) for i in items], more

    def list_api_keys(self, tenant_id: str, *, after: str | None, limit: int) -> tuple[list[ApiKeyRecord], bool]:
        items, more = self.list_owned("key", tenant_id, after=after, limit=limit, newest_first=True)
        return [ApiKeyRecord.model_validate(i) for i in items], more

    def delete_api_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key: its record and its hash look-up go together."""
        item = self.get_raw("key", key_id)
        if item is None:
            raise NotFound(f"No such API key object: {key_id}", param="key_id")
        record = ApiKeyRecord.model_validate(item)
        if self._transact(
            ("Delete", {"Key": {"pk": key_id, "sk": "key"}, "ConditionExpression": "attribute_exists(pk)"}),
            ("Delete", {"Key": {"pk": f"keyhash#{record.key_hash}", "sk": "keyhash"}}),
        ):
            raise NotFound(f"No such API key object: {key_id}", param="key_id")  # revoked meanwhile
        return record

    def put_api_key(self, key: ApiKeyRecord) -> None:
        """The key item (listed under its tenant) and its hash look-up item, together or not at all."""
        key_item = self.item("key", key, owner=key.tenant_id)
        hash_item = {
            "pk": f"keyhash#{key.key_hash}",
            "sk": "keyhash",
            "key_id": key.id,
            "tenant_id": key.tenant_id,
        }
        new = "attribute_not_exists(pk)"
        if self._transact(
            ("Put", {"Item": key_item, "ConditionExpression": new}),
            ("Put", {"Item": hash_item, "ConditionExpression": new}),
        ):
            raise Conflict(f"API key {key.id} already exists.")

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key whose hash this is, if it exists and is not revoked."""
        found = self.table.get_item(Key={"pk": f"keyhash#{key_hash}", "sk": "keyhash"}, ConsistentRead=True)
        if "Item" not in found:
            return None
        item = self.get_raw("key", found["Item"]["key_id"])
        return ApiKeyRecord.model_validate(item) if item else None

    # ----------------------------------------------------------------------------------------- S3

    def upload(self, key: str, body: IO[bytes], *, content_type: str = "application/octet-stream") -> None:
        """Stream a file-like object to S3 (multipart above 8 MB, never whole in memory)."""
        self.s3.upload_fileobj(body, self.bucket_name, key, ExtraArgs={"ContentType": content_type})

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket_name, Key=key, Body=data, ContentType=content_type)

    def read_range(self, key: str, start: int, end: int) -> Any:
        """A streaming body of bytes [start, end) of an object."""
        return self.s3.get_object(Bucket=self.bucket_name, Key=key, Range=f"bytes={start}-{end - 1}")["Body"]

    def presigned_get(self, key: str, *, expires_in: int, filename: str) -> str:
        """A URL that downloads the object for `expires_in` seconds, for bodies too large to relay."""
        url: str = self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket_name,
                "Key": key,
                "ResponseContentType": "application/octet-stream",
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_in,
        )
        return url

    def open_object(self, key: str) -> Any:
        """A streaming body of the whole object."""
        return self.s3.get_object(Bucket=self.bucket_name, Key=key)["Body"]

    def writer(self, key: str, *, content_type: str = "application/jsonl") -> ObjectWriter:
        return ObjectWriter(self.s3, self.bucket_name, key, content_type=content_type)

    def copy_into(self, key: str, writer: ObjectWriter) -> None:
        """Stream an object's bytes into a writer, a chunk at a time."""
        for block in self.stream(key):
            writer.write(block)

    def copy_object(self, source_key: str, key: str) -> None:
        self.s3.copy_object(
            Bucket=self.bucket_name, Key=key, CopySource={"Bucket": self.bucket_name, "Key": source_key}
        )

    def delete_object(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket_name, Key=key)

    def stream(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time."""
        body = self.s3.get_object(Bucket=self.bucket_name, Key=key)["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()


class ObjectWriter:
    """Writes an S3 object from a stream of blocks: one put when small, a multipart upload when not.

    Memory holds at most one part (S3 needs every part but the last to be at least 5 MiB).
    """

    PART_BYTES = 8 * 1024 * 1024

    def __init__(self, s3: Any, bucket: str, key: str, *, content_type: str) -> None:
        self._s3, self._bucket, self.key, self._content_type = s3, bucket, key, content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self.PART_BYTES:
            self._flush_part()

    def _flush_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type
            )["UploadId"]
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=bytes(self._buffer)
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer.clear()

    def close(self) -> int:
        """Finish the object; its size in bytes. Nothing written is no object at all (none to delete later)."""
        if self._upload_id is None:
            if not self._buffer:
                return 0
            self._s3.put_object(
                Bucket=self._bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self._content_type
            )
        else:
            if self._buffer:
                self._flush_part()
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buffer.clear()
        return self.size

    def abort(self) -> None:
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None
