"""What each DynamoDB request moto serves consumed, charged to every attached meter (localcloud.capacity).

Two places in moto: its request handler, for the item operations (the item as it was is looked up before
moto runs the request, and the charge is made from what it did), and its Table.query and Table.scan, which
are made to return everything they read (billed) before their filter and projection are applied.
"""

from __future__ import annotations

import functools
import inspect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from localcloud.capacity_units import (
    TRANSACTIONAL,
    Charge,
    Target,
    billed_name,
    index_hash,
    key_text,
    read_units,
    stored_size,
)
from localcloud.patching import Patches


class Sink(Protocol):
    """What a request's charges go to (a capacity.Meter)."""

    def charge(self, charges: Iterable[Charge]) -> None: ...


_patches = Patches()
_sinks: list[Sink] = []


def _charge(charges: list[Charge]) -> None:
    for meter in list(_sinks):
        meter.charge(charges)


def _conditional_check_failed() -> type[Exception]:
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    return ConditionalCheckFailed


def _transaction_canceled() -> type[Exception]:
    from moto.dynamodb.exceptions import TransactionCanceledException

    return TransactionCanceledException


# -------------------------------------------------------------------- the requests, at moto's handler

# Each takes the handler (its `body` is the parsed request) and moto's own method. What the request names
# is looked up before moto runs it; one that cannot be (no such table, a key missing) is left to moto,
# whose validation error consumes nothing.
Metered = Callable[[Any, Callable[[Any], Any]], Any]


def _get_item(handler: Any, original: Callable[[Any], Any]) -> Any:
    body = handler.body
    result = original(handler)
    target = Target(handler.dynamodb_backend, body["TableName"], body["Key"])
    _charge([target.read(consistent=bool(body.get("ConsistentRead")))])
    return result


def _batch_get_item(handler: Any, original: Callable[[Any], Any]) -> Any:
    requested = handler.body["RequestItems"]
    result = original(handler)
    charges = [
        Target(handler.dynamodb_backend, table_name, key).read(consistent=bool(request.get("ConsistentRead")))
        for table_name, request in requested.items()
        for key in request["Keys"]
    ]
    _charge(charges)
    return result


def _transact_get_items(handler: Any, original: Callable[[Any], Any]) -> Any:
    gets = [entry["Get"] for entry in handler.body["TransactItems"]]
    result = original(handler)
    backend = handler.dynamodb_backend
    _charge([Target(backend, get["TableName"], get["Key"]).read(consistent=True, transactional=True) for get in gets])
    return result


def _single_write(new_item: bool = False, copied: bool = False) -> Metered:
    """PutItem (`new_item`: the key is the item's), UpdateItem (`copied`: changed in place) or DeleteItem."""

    def write(handler: Any, original: Callable[[Any], Any]) -> Any:
        body = handler.body
        try:
            if new_item:
                target = Target.of_item(handler.dynamodb_backend, body["TableName"], body["Item"])
            else:
                target = Target(handler.dynamodb_backend, body["TableName"], body["Key"], copied=copied)
        except Exception:  # noqa: BLE001  # moto answers it with its own validation error
            return original(handler)
        try:
            result = original(handler)
        except _conditional_check_failed():
            _charge([target.refused(body.get("Item"))])
            raise
        _charge(target.written())
        return result

    return write


def _batch_write_item(handler: Any, original: Callable[[Any], Any]) -> Any:
    backend = handler.dynamodb_backend
    try:
        targets = [
            Target.of_item(backend, table_name, request["PutRequest"]["Item"])
            if "PutRequest" in request
            else Target(backend, table_name, request["DeleteRequest"]["Key"])
            for table_name, requests in handler.body["RequestItems"].items()
            for request in requests
        ]
    except Exception:  # noqa: BLE001
        return original(handler)
    result = original(handler)
    _charge([charge for target in targets for charge in target.written()])
    return result


def _transact_write_items(handler: Any, original: Callable[[Any], Any]) -> Any:
    backend = handler.dynamodb_backend
    actions: list[tuple[str, Mapping[str, Any], Target]] = []
    try:
        for entry in handler.body["TransactItems"]:
            action, op = next(iter(entry.items()))
            if action == "Put":
                target = Target.of_item(backend, op["TableName"], op["Item"])
            else:
                target = Target(backend, op["TableName"], op["Key"], copied=action == "Update")
            actions.append((action, op, target))
    except Exception:  # noqa: BLE001
        return original(handler)
    try:
        result = original(handler)
    except _transaction_canceled():
        # Prepared, never committed: each item billed on the larger of the item there and the one it would write.
        _charge([target.refused(op.get("Item"), TRANSACTIONAL) for _, op, target in actions])
        raise
    charges: list[Charge] = []
    for action, _, target in actions:
        if action == "ConditionCheck":
            charges.append(target.refused(None, TRANSACTIONAL))
        else:
            # Index entries are updated after the commit, as any write's: not doubled.
            table_charge, *index_charges = target.written()
            charges += [table_charge._replace(units=table_charge.units * TRANSACTIONAL), *index_charges]
    _charge(charges)
    return result


_HANDLED: dict[str, Metered] = {
    "get_item": _get_item,
    "batch_get_item": _batch_get_item,
    "transact_get_items": _transact_get_items,
    "put_item": _single_write(new_item=True),
    "update_item": _single_write(copied=True),
    "delete_item": _single_write(),
    "batch_write_item": _batch_write_item,
    "transact_write_items": _transact_write_items,
}


def _metering(operation: Metered) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        def handle(self: Any) -> Any:
            if not _sinks:
                return original(self)
            return operation(self, original)

        return handle

    return make


# ------------------------------------------------------------------ Query and Scan, at moto's table

# moto's Table.query and Table.scan filter what they read themselves: called here without the filter and
# the projection, what they return is everything read (billed), then filtered and projected as moto does.


def _read_target(table: Any, index_name: str | None) -> tuple[str, str, bool]:
    """(name billed, its partition key attribute, whether it is a global index) for a table or index read."""
    for index in table.global_indexes or ():
        if index.name == index_name:
            return billed_name(table, index), index_hash(index), True
    # A local index shares the table's partition key and capacity.
    return table.name, table.hash_key_attr, False


def _unfiltered(original: Any, projection: str) -> Any:
    signature = inspect.signature(original)

    def call(table: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, dict[str, Any]]:
        bound = signature.bind(table, *args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        wanted = (arguments["filter_expression"], arguments[projection])
        arguments["filter_expression"] = None
        arguments[projection] = None
        return original(*bound.args, **bound.kwargs), wanted, arguments

    return call


def _filtered(results: list[Any], filter_expression: Any, projection: Any) -> list[Any]:
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection:
        results = [item.project(projection) for item in results]
    return results


def _metered_query(original: Any) -> Any:
    call = _unfiltered(original, "projection_expressions")

    @functools.wraps(original)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _sinks:
            return original(self, *args, **kwargs)
        (results, scanned, last), (filter_expression, projection), arguments = call(self, *args, **kwargs)
        name, _, is_global = _read_target(self, arguments["index_name"])
        hash_key = arguments["hash_key"]
        if hash_key is None and arguments["hash_key_conditions"]:
            hash_key = arguments["hash_key_conditions"][0][1]
        partition = key_text(hash_key) if hash_key is not None else ""
        consistent = bool(arguments["consistent_read"]) and not is_global
        size = sum(stored_size(item) for item in results)
        _charge([Charge("rcu", name, partition, read_units(size, consistent=consistent))])
        return _filtered(results, filter_expression, projection), scanned, last

    return query


def _metered_scan(original: Any) -> Any:
    call = _unfiltered(original, "projection_expression")

    @functools.wraps(original)
    def scan(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _sinks:
            return original(self, *args, **kwargs)
        (results, scanned, last), (filter_expression, projection), arguments = call(self, *args, **kwargs)
        name, hash_attr, is_global = _read_target(self, arguments["index_name"])
        consistent = bool(arguments["consistent_read"]) and not is_global
        sizes: defaultdict[str, int] = defaultdict(int)
        for item in results:
            sizes[key_text(item.attrs[hash_attr])] += stored_size(item)
        # A scan that read nothing still costs the minimum, on no partition key.
        charges = [
            Charge("rcu", name, partition, read_units(size, consistent=consistent)) for partition, size in sizes.items()
        ]
        _charge(charges or [Charge("rcu", name, "", read_units(0, consistent=consistent))])
        return _filtered(results, filter_expression, projection), scanned, last

    return scan


# ------------------------------------------------------------------------------------------ lifecycle


def attach(meter: Sink) -> None:
    """Charge every DynamoDB request from now on to `meter` too (patching moto while any meter is attached)."""
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    with _patches.lock:
        if meter not in _sinks:
            _sinks.append(meter)
        for name, operation in _HANDLED.items():
            _patches.patch(DynamoHandler, name, _metering(operation))
        _patches.patch(Table, "query", _metered_query)
        _patches.patch(Table, "scan", _metered_scan)


def detach(meter: Sink) -> None:
    """Charge nothing more to `meter`; moto's own methods are back once no meter is attached (idempotent)."""
    with _patches.lock:
        if meter in _sinks:
            _sinks.remove(meter)
        if not _sinks:
            _patches.undo()
