"""The DynamoDB table primitive: how an object becomes an item, and the conditional writes every aggregate uses.

One table. Each object is addressed by its own id (`pk` = id, `sk` = kind), so a worker or an admin
can read it without knowing its tenant; reads on behalf of a tenant check ownership and answer
NotFound for anyone else's object. `gsi1` lists a tenant's objects of one kind in creation order.
A failed condition becomes a domain error here, so no aggregate handles a ClientError itself.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from batchline.data import conditions
from batchline.errors import BatchlineError, Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from batchline.data.conditions import ConditionBase

KEY_ATTRS = ("pk", "sk")
INDEX_NAME = "gsi1"
INDEX_ATTRS = ("gsi1pk", "gsi1sk")
TTL_ATTR = "ttl"
ADMIN_OWNER = "admin"
# Why DynamoDB cancels a transaction that the same transaction, tried again later, may pass.
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
# What DynamoDB answers a call when a partition (or the table) is over its throughput, once botocore's own
# retries are spent: a moment's wait, like a lost race, not a fault.
THROTTLED_ERRORS = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


def throttled(exc: Exception) -> bool:
    """True for a ClientError that says DynamoDB throttled the call."""
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in THROTTLED_ERRORS


# DynamoDB's limit for a partition key value (2048) less room for the prefixes some keys carry.
MAX_KEY_BYTES = 1024

NAMES = {
    "file": "File",
    "batch": "Batch",
    "job": "Job",
    "tenant": "Tenant",
    "key": "API key",
    "upload": "Upload",
}


def to_item(model: BaseModel) -> dict[str, Any]:
    """A model as a DynamoDB item (numbers as Decimal, which boto3 requires)."""
    return json.loads(model.model_dump_json(), parse_float=Decimal)  # type: ignore[no-any-return]


def absent(name: str) -> ConditionBase:
    """The attribute is not there: never written, or written as null (a model's None)."""
    return conditions.Attr(name).not_exists() | conditions.Attr(name).attribute_type("NULL")


def _typed_item(exc: ClientError) -> dict[str, Any]:
    """The item a failed condition returned (or {}): in DynamoDB's typed form, as error bodies are not
    deserialized for us."""
    from boto3.dynamodb.types import TypeDeserializer  # deferred: boto3 on first use (see conditions)

    found = exc.response.get("Item") or {}
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in found.items()}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def retryable(reasons: list[str | None]) -> bool:
    """DynamoDB cancelled a transaction only for contention or throttling, which a later try may pass."""
    return bool(reasons) and set(reasons) <= {"None", None, *RETRYABLE_REASONS}


@dataclass(frozen=True)
class Backoff:
    """The tries of a write that DynamoDB cancels for contention: full-jitter waits between them, about 10 s
    in all by default, so that writers that collided do not all come back together."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def tries(self) -> Iterator[int]:
        """Each try's number; the caller stops when one passes, or says so when they run out."""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.random() * min(self.cap, self.base * 2 ** (attempt - 1)))
            yield attempt


def _failed_condition(exc: ClientError) -> bool:
    code: str = exc.response["Error"]["Code"]
    return code == "ConditionalCheckFailedException"


class Table:
    """One DynamoDB table; the boto3 resource is created on first use."""

    def __init__(self, name: str, *, dynamodb: Any = None) -> None:
        self.name = name
        self._dynamodb = dynamodb

    @cached_property
    def resource(self) -> Any:
        """The boto3 Table, for what needs one itself (the rate limiter, tests)."""
        return self._service.Table(self.name)

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

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        """Write an item that must be new; False if one with its key is there already."""
        try:
            self.resource.put_item(Item=item, ConditionExpression=conditions.Attr("pk").not_exists())
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def put_if(self, item: dict[str, Any], condition: ConditionBase) -> dict[str, Any] | None:
        """Write an item only if `condition` holds: None when written, else the item as it is (or {} if none).

        The item that failed the condition comes back with the failure (ReturnValuesOnConditionCheckFailure),
        so a writer that lost a race can try again without reading first.
        """
        try:
            self.resource.put_item(
                Item=item, ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD"
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return _typed_item(exc)
            raise
        return None

    def update_or_current(
        self, key: dict[str, Any], expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """An update of an existing item written only if `condition` holds: None when written, else the item as
        it is (or {} if none), returned with the failure as put_if's is."""
        try:
            self.resource.update_item(
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return _typed_item(exc)
            raise
        return None

    def put_new(self, kind: str, model: BaseModel, *, owner: str | None) -> None:
        item = self.item(kind, model, owner=owner)
        if not self.put_if_absent(item):
            raise Conflict(f"{NAMES.get(kind, kind)} {item['id']} already exists.")

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
        exists = conditions.Attr("pk").exists()
        try:
            answer = self.resource.update_item(
                Key={"pk": object_id, "sk": kind},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=exists & condition if condition is not None else exists,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _failed_condition(exc):
                raise (Conflict(conflict) if isinstance(conflict, str) else conflict) from exc
            raise
        return answer["Attributes"]  # type: ignore[no-any-return]

    def update_if(
        self,
        key: dict[str, Any],
        expression: str,
        condition: ConditionBase,
        names: dict[str, str],
        values: dict[str, Any] | None = None,
    ) -> bool:
        """An update written only when `condition` holds (an expression SET/ADD cannot say); False if not."""
        params: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        try:
            self.resource.update_item(
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **params,
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def delete(self, kind: str, object_id: str, *, condition: ConditionBase | None = None, conflict: str = "") -> None:
        """Delete an item; with a `condition`, a Conflict saying `conflict` when it does not hold."""
        if condition is None:
            self.resource.delete_item(Key={"pk": object_id, "sk": kind})
            return
        try:
            self.resource.delete_item(Key={"pk": object_id, "sk": kind}, ConditionExpression=condition)
        except ClientError as exc:
            if _failed_condition(exc):
                raise Conflict(conflict) from exc
            raise

    def transact(self, *actions: tuple[str, dict[str, Any]]) -> list[str | None]:
        """Write every action or none: [] when written, else each action's cancellation reason code.

        Actions are (verb, parameters) such as ("Put", {"Item": ..., "ConditionExpression": ...}); the
        resource's client serializes plain Python values, as the Table does.
        """
        try:
            self.resource.meta.client.transact_write_items(
                TransactItems=[{verb: {"TableName": self.name, **params}} for verb, params in actions]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return [r.get("Code") for r in exc.response.get("CancellationReasons", [])] or [None]
        return []

    def get_key(self, key: dict[str, Any], *, consistent: bool = False) -> dict[str, Any] | None:
        """The item at a key, as stored; None if there is none."""
        params: dict[str, Any] = {"Key": key}
        if consistent:
            params["ConsistentRead"] = True
        item: dict[str, Any] | None = self.resource.get_item(**params).get("Item")
        return item

    def get_keys(self, keys: list[dict[str, Any]], *, consistent: bool = False) -> list[dict[str, Any] | None]:
        """The items at several keys in one BatchGetItem (at most 100), in the keys' order; None where none is.

        DynamoDB may leave keys unprocessed under load: those are asked again until all are answered.
        """
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        request: dict[str, Any] = {self.name: {"Keys": keys, "ConsistentRead": consistent}}
        while request:
            answer = self._service.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(self.name, []):
                found[tuple(item[name] for name in KEY_ATTRS)] = item
            request = answer.get("UnprocessedKeys") or {}
        return [found.get(tuple(key[name] for name in KEY_ATTRS)) for key in keys]

    @cached_property
    def _service(self) -> Any:
        """The DynamoDB service resource the Table belongs to: BatchGetItem is the service's, not a table's."""
        import boto3  # deferred: importing boto3 is 100 ms of cold start (see conditions)

        return self._dynamodb or boto3.resource("dynamodb")

    def get_fields(self, key: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any] | None:
        """Only the named attributes of the item at a key (eventually consistent): a poll that reads little."""
        answer = self.resource.get_item(
            Key=key,
            ProjectionExpression=", ".join(f"#a{i}" for i in range(len(names))),
            ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(names)},
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """An object's item by id alone, whoever owns it; None if there is none."""
        if not object_id or len(object_id.encode()) > MAX_KEY_BYTES:
            return None  # no object has such an id, and DynamoDB would refuse it as a key
        return self.get_key({"pk": object_id, "sk": kind})

    def get_owned(self, kind: str, tenant_id: str, object_id: str, *, param: str = "id") -> dict[str, Any]:
        """An object's item if `tenant_id` owns it; NotFound (never Forbidden) for anyone else's."""
        item = self.get(kind, object_id)
        if item is None or item.get("tenant_id", item.get("tenant")) != tenant_id:
            raise NotFound(f"No such {NAMES.get(kind, kind)} object: {object_id}", param=param)
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
            "KeyConditionExpression": conditions.Key("gsi1pk").eq(f"{owner}#{kind}"),
            "ScanIndexForward": not newest_first,
        }
        if filter_ is not None:
            query["FilterExpression"] = filter_
        if after:
            cursor = self.get(kind, after)
            if cursor is None or cursor.get("gsi1pk") != f"{owner}#{kind}":
                raise InvalidRequest(f"Invalid 'after': {after} is not an id from this list.", param="after")
            query["ExclusiveStartKey"] = {k: cursor[k] for k in (*KEY_ATTRS, *INDEX_ATTRS)}
        items: list[dict[str, Any]] = []
        # One item more than asked tells whether another page exists; a filter may need several queries.
        while len(items) <= limit:
            page = self.resource.query(Limit=limit + 1 - len(items), **query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[:limit], len(items) > limit

    def query_all(self, **query: Any) -> list[dict[str, Any]]:
        """Every item a query matches, across DynamoDB's pages."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.resource.query(**query)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
