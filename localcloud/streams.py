"""DynamoDB TTL and stream delivery to Lambda, as AWS does them; moto does neither.

moto ignores a table's TimeToLiveSpecification in CloudFormation and never expires an item. It hands
every stream record to every mapped function, ignoring the mapping's FilterCriteria and BatchSize,
and its records lack `userIdentity`, which marks a removal made by TTL (type Service, principalId
dynamodb.amazonaws.com) and by which a mapping's filter tells it from a delete a caller made.

Here: a table created by the stack gets its TTL specification; `expire(now)` removes every item whose
TTL attribute is a time before `now`, as TTL's background process does, with that `userIdentity` on
the REMOVE records; stream records reach a function only when they match one of its mapping's
filters, in batches of at most its BatchSize, with an event shaped like Lambda's. moto runs the mapped
function from inside the write that made the records; on AWS it runs after, so deliveries are held
until the request is done (localcloud.serialized), and a transaction's until it commits
(localcloud.dynamodb).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

from moto.core.utils import unix_time

from localcloud.dynamodb import DYNAMODB_LOCK
from localcloud.patching import Patches
from localcloud.serialized import hold, request

log = logging.getLogger(__name__)

TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
# A batch of records without a BatchSize: the DynamoDB mapping's default.
DEFAULT_BATCH_SIZE = 100


class _Expiring(threading.local):
    """Set while the current thread removes items by TTL: the stream records it makes are the service's."""

    active = False


_expiring = _Expiring()
_patches = Patches()


def table_from_cloudformation(original: Any) -> Any:
    """Wraps Table.create_from_cloudformation_json: apply TimeToLiveSpecification as CloudFormation does."""

    def create(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = original.__func__(cls, resource_name, cloudformation_json, *args, **kwargs)
        spec = cloudformation_json.get("Properties", {}).get("TimeToLiveSpecification")
        if spec and str(spec.get("Enabled")).lower() == "true":
            table.ttl = {"TimeToLiveStatus": "ENABLED", "AttributeName": spec["AttributeName"]}
        return table

    return classmethod(create)


def record_with_identity(original: Any) -> Any:
    """Wraps StreamRecord.__init__: a record made while TTL expires items says the service removed it."""

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _expiring.active:
            self.record["userIdentity"] = dict(TTL_IDENTITY)

    return init


def expire(now: float | None = None) -> int:
    """Remove every item whose TTL has passed at `now` (epoch seconds), in every table; how many."""
    from moto.core.base_backend import BackendDict
    from moto.dynamodb.models import dynamodb_backends

    moment = time.time() if now is None else now
    removed = 0
    assert isinstance(dynamodb_backends, BackendDict)
    for account in list(dynamodb_backends.values()):
        for backend in list(account.values()):
            for table in list(backend.tables.values()):
                attribute = table.ttl.get("AttributeName")
                if table.ttl.get("TimeToLiveStatus") != "ENABLED" or not attribute:
                    continue
                # One request of the service: serialized with the others, its stream records after it.
                with request(DYNAMODB_LOCK):
                    _expiring.active = True
                    try:
                        for item in table.all_items():
                            if _expired(item.attrs.get(attribute), moment):
                                table.delete_item(item.hash_key, item.range_key)
                                removed += 1
                    finally:
                        _expiring.active = False
    return removed


def _expired(value: Any, now: float) -> bool:
    # TTL reads a Number of epoch seconds; any other type, or none, never expires.
    if value is None or value.type != "N":
        return False
    try:
        return float(value.value) < now
    except ValueError:
        return False


def _held_delivery(original: Any) -> Any:
    """Wraps LambdaBackend.send_dynamodb_items: the records go to `deliver`, after the request that made them."""

    @functools.wraps(original)
    def send_dynamodb_items(self: Any, function_arn: str, items: list[Any], source: str) -> Any:
        # The shard starts a new list after a truthy answer, so this one is ours to deliver later.
        records = list(items)
        # `deliver` is looked up when it runs, so a test can stand in for the mapped function.
        if not hold(lambda: deliver(self, function_arn, records, source)):
            deliver(self, function_arn, records, source)
        return "delivered"

    return send_dynamodb_items


def deliver(backend: Any, function_arn: str, items: list[Any], source: str) -> None:
    """Invoke the function with the records its mapping's filters let through, BatchSize at a time."""
    mappings = [
        esm
        for esm in backend._event_source_mappings.values()
        if esm.function_arn == function_arn and esm.event_source_arn == source and esm.enabled
    ]
    func = backend._lambdas.get_arn(function_arn)
    for esm in mappings:
        records = [event_record(item.to_json(), backend.region_name, source) for item in items]
        passing = [record for record in records if matches(esm.filter_criteria, record)]
        size = int(esm.batch_size or DEFAULT_BATCH_SIZE)
        for start in range(0, len(passing), size):
            answer = func.invoke(json.dumps({"Records": passing[start : start + size]}), {}, {})
            _report(function_arn, answer)


def event_record(record: dict[str, Any], region: str, source: str) -> dict[str, Any]:
    """A stream record as Lambda's event carries it."""
    dynamodb = dict(record["dynamodb"])
    if isinstance(dynamodb.get("ApproximateCreationDateTime"), datetime):
        dynamodb["ApproximateCreationDateTime"] = unix_time(dynamodb["ApproximateCreationDateTime"])
    event: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record["eventVersion"],
        "eventSource": record["eventSource"],
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": source,
    }
    if "userIdentity" in record:
        event["userIdentity"] = record["userIdentity"]
    return event


def matches(filter_criteria: dict[str, Any] | None, record: dict[str, Any]) -> bool:
    """Whether a record passes a mapping's FilterCriteria (any filter; none means all pass)."""
    from moto.events.models import EventPattern

    filters = (filter_criteria or {}).get("Filters") or []
    if not filters:
        return True
    # moto types the event as EventBridge's; a stream record is matched the same way.
    return any(EventPattern.load(f["Pattern"]).matches_event(record) for f in filters)  # type: ignore[arg-type]


def _report(function_arn: str, answer: Any) -> None:
    # Lambda retries a failed batch per the mapping (MaximumRetryAttempts); here it is only reported.
    try:
        body = json.loads(answer) if answer else {}
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict) and (body.get("errorType") or body.get("batchItemFailures")):
        log.warning("%s reported failures for stream records: %s", function_arn, body)


class Reaper:
    """TTL's background process: `expire()` every `interval` seconds until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dynamodb-ttl", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                expire()
            except Exception:  # the next round tries again, as TTL does
                log.exception("expiring items by TTL failed")


def install() -> None:
    """TTL specifications from CloudFormation, TTL's identity on its records, deliveries by mapping (idempotent)."""
    from moto.awslambda.models import LambdaBackend
    from moto.dynamodb.models.table import StreamRecord, Table

    with _patches.lock:
        _patches.patch(LambdaBackend, "send_dynamodb_items", _held_delivery)
        _patches.patch(Table, "create_from_cloudformation_json", table_from_cloudformation)
        _patches.patch(StreamRecord, "__init__", record_with_identity)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
