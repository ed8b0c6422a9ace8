"""DynamoDB read and write capacity units, per table, partition key and second, as on-demand DynamoDB bills them.

Every DynamoDB request moto serves in this process (its server, as in the local cloud, or the in-process
`mock_aws()`) is metered while a Meter is attached (`metered()` for a block, `attach`/`detach` for a lifetime,
as the local cloud does). Each unit is attributed to the table (or `<table>/index/<index>` for a global
secondary index) and the partition key value of the item it was consumed for, in the second `clock()` says
it was consumed: one read of the clock per request, so a benchmark can drive simulated time.

The rules, from the developer guide's "DynamoDB read and write operations" (read-write-operations.html),
"DynamoDB item sizes and formats" (CapacityUnitCalculations.html), "Transactions: how it works"
(transaction-apis.html) and "Global secondary indexes" (GSI.html#GSI.ThroughputConsiderations):

- Reads: 1 RCU per 4 KB strongly consistent, half that eventually consistent, 2 per 4 KB transactional;
  "If you perform a read operation on an item that doesn't exist, DynamoDB will still consume read
  throughput", so an absent item costs the minimum. A projection "has no impact on the item size
  calculations": the whole item is billed. BatchGetItem: each item "as an individual GetItem request".
  Query: "All items returned are treated as a single read operation, where DynamoDB computes the total size
  of all items. DynamoDB then rounds up the size to the next 4 KB boundary", summed before any filter (a
  filter is applied after the read); Scan "considers the size of the items that are evaluated", summed and
  rounded here per partition key it touched. A global index is read eventually consistent, on the sizes of
  its entries (their projected attributes).
- Writes: 1 WCU per 1 KB, at least 1. PutItem and UpdateItem on "the larger of" the item's sizes before and
  after, DeleteItem on the deleted item's. A failed conditional write "still consumes write capacity", on
  "an existing item in the table or a new one you're attempting to create" (the larger). BatchWriteItem:
  each item as its own PutItem or DeleteItem.
- Transactions: "two underlying reads or writes of every item in the transaction: one to prepare the
  transaction and one to commit the transaction" (ConditionCheck items too: they are items of the
  transaction), and that capacity is consumed "even when a transaction does not succeed": a cancelled
  TransactWriteItems is billed on every item as if it had committed.
- Global secondary indexes: a write that puts an entry into an index, or removes one, costs one write on
  the index (on the entry's size); one that changes the index key costs two (a delete from the old key's
  partition, a put on the new one's); one that changes only projected attributes costs one; one that
  changes nothing the index holds costs nothing on it.

Per partition key, not per physical partition: AWS's partitions may each hold many keys, and adaptive
capacity may split a hot key's items across partitions; counting per key is the stricter reading.
Not modelled: PartiQL (ExecuteStatement, BatchExecuteStatement, ExecuteTransaction) consumes nothing here;
the legacy QueryFilter and ScanFilter drop items before they are billed; a failed conditional UpdateItem
is billed on the item there (moto does not compute the item it would have written); writes to local
secondary indexes; TTL deletions (free on AWS) and DynamoDB Streams reads; provisioned capacity,
throttling, burst and adaptive capacity; the ConsumedCapacity moto returns stays moto's own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import inspect
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from localcloud.patching import Patches

KB = 1024
READ_UNIT_BYTES = 4 * KB
WRITE_UNIT_BYTES = KB
# Both phases of a transaction: prepare and commit.
TRANSACTIONAL = 2
KINDS = ("rcu", "wcu")


@dataclass(frozen=True)
class Peak:
    """The most units one partition key consumed in one second."""

    units: float  # capacity units consumed in that second on that partition key
    table: str  # the table, or "<table>/index/<index>" for a global secondary index
    partition: str  # the item's partition (hash) key value, as a string
    second: int  # floor(clock()) when consumed


class Charge(NamedTuple):
    """Units of one kind ("rcu" or "wcu") one request consumed on one partition key."""

    kind: str
    table: str
    partition: str
    units: float


class Meter:
    """Capacity units consumed per (table, partition key, second), from what is charged to it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # settable: a benchmark drives simulated time
        self._lock = threading.Lock()
        self._units: defaultdict[tuple[str, str, str, int], float] = defaultdict(float)

    def charge(self, charges: Iterable[Charge]) -> None:
        """Count what one request consumed, in the second the clock reads now."""
        second = math.floor(self.clock())
        with self._lock:
            for kind, table, partition, units in charges:
                self._units[(kind, table, partition, second)] += units

    def peaks(self, table: str | None = None) -> dict[str, Peak | None]:
        """The highest (table, partition, second) of each kind, of one table if given; None where none.

        Of equal ones, the earliest second (then table and partition in order), so the answer is stable.
        """
        best: dict[str, Peak | None] = dict.fromkeys(KINDS)
        with self._lock:
            cells = list(self._units.items())
        for (kind, name, partition, second), units in cells:
            if table is not None and name != table:
                continue
            peak = best[kind]
            found = Peak(units, name, partition, second)
            if peak is None or _rank(found) < _rank(peak):
                best[kind] = found
        return best

    def totals(self) -> dict[str, float]:
        """All units consumed, of each kind."""
        totals = dict.fromkeys(KINDS, 0.0)
        with self._lock:
            for (kind, *_), units in self._units.items():
                totals[kind] += units
        return totals

    def by_partition(self) -> dict[tuple[str, str], dict[str, float]]:
        """All units consumed on each (table, partition key), of each kind."""
        found: dict[tuple[str, str], dict[str, float]] = {}
        with self._lock:
            for (kind, table, partition, _), units in sorted(self._units.items()):
                found.setdefault((table, partition), dict.fromkeys(KINDS, 0.0))[kind] += units
        return found

    def per_second(self) -> dict[tuple[str, str, int], dict[str, float]]:
        """The units consumed on each (table, partition key, second), of each kind."""
        found: dict[tuple[str, str, int], dict[str, float]] = {}
        with self._lock:
            for (kind, table, partition, second), units in sorted(self._units.items()):
                found.setdefault((table, partition, second), dict.fromkeys(KINDS, 0.0))[kind] += units
        return found

    def reset(self) -> None:
        """Forget everything consumed."""
        with self._lock:
            self._units.clear()


def _rank(peak: Peak) -> tuple[float, int, str, str]:
    return (-peak.units, peak.second, peak.table, peak.partition)


# ------------------------------------------------------------------------------------------------ sizes


def _number_size(text: str) -> int:
    """(1 byte per two significant digits) + (1 byte), leading and trailing zeroes trimmed."""
    mantissa = text.strip().lstrip("+-").split("e")[0].split("E")[0]
    digits = mantissa.replace(".", "").lstrip("0").rstrip("0")
    return math.ceil(max(1, len(digits)) / 2) + 1


def _raw_bytes(value: Any) -> bytes:
    """A binary value's raw bytes: moto keeps some as bytes, some (nested ones) as their base64 text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return str(value).encode()


def _parts(value: Any) -> tuple[str, Any]:
    """(type, value) of an attribute value: a moto DynamoType or a wire-form {"S": ...} dict."""
    if isinstance(value, Mapping):
        return next(iter(value.items()))
    return value.type, value.value


def attribute_size(value: Any) -> int:
    """The size of one attribute value as DynamoDB counts it (CapacityUnitCalculations.html)."""
    kind, raw = _parts(value)
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return _number_size(raw)
    if kind == "B":
        return len(_raw_bytes(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(element.encode()) for element in raw)
    if kind == "NS":
        return sum(_number_size(element) for element in raw)
    if kind == "BS":
        return sum(len(_raw_bytes(element)) for element in raw)
    # "An attribute of type List or Map requires 3 bytes of overhead, regardless of its contents", and
    # "Each List or Map element also requires 1 byte of overhead"; a map's elements are named.
    if kind == "L":
        return 3 + sum(attribute_size(element) + 1 for element in raw)
    if kind == "M":
        return 3 + sum(len(name.encode()) + attribute_size(element) + 1 for name, element in raw.items())
    raise ValueError(f"not a DynamoDB attribute value type: {kind!r}")


def item_size(attributes: Mapping[str, Any]) -> int:
    """The size of an item: "the sum of the lengths of its attribute names and values"."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in attributes.items())


def _size(item: Any) -> int:
    """The size of a moto Item, or 0 for none."""
    return 0 if item is None else item_size(item.attrs)


def key_text(value: Any) -> str:
    """A key attribute's value as a string: a number in its canonical form, binary as base64."""
    kind, raw = _parts(value)
    if kind == "N":
        try:
            return format(Decimal(raw).normalize(), "f")
        except InvalidOperation:
            return str(raw)
    if kind == "B":
        return base64.b64encode(_raw_bytes(raw)).decode("ascii")
    return str(raw)


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read units for `size` bytes read at once: at least one 4 KB unit, halved or doubled."""
    units = float(max(1, math.ceil(size / READ_UNIT_BYTES)))
    if transactional:
        return units * TRANSACTIONAL
    return units if consistent else units / 2


def write_units(size: int) -> float:
    """Write units for an item of `size` bytes: at least one 1 KB unit."""
    return float(max(1, math.ceil(size / WRITE_UNIT_BYTES)))


# ------------------------------------------------------------------------------------ items and indexes


def _index_name(table: Any, index: Any) -> str:
    return f"{table.name}/index/{index.name}"


def _index_hash(index: Any) -> str:
    return str(next(key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"))


def _entry(index: Any, item: Any) -> Any:
    """The item's entry in a global index (its projected attributes), or None when the index skips it."""
    if item is None or not all(name in item.attrs for name in index.schema_key_attrs):
        return None
    return index.project(item)


def _index_write(name: str, hash_attr: str, entry: Any, size: int) -> Charge:
    return Charge("wcu", name, key_text(entry.attrs[hash_attr]), write_units(size))


def _index_writes(table: Any, before: Any, after: Any) -> list[Charge]:
    """What a write from `before` to `after` (either None) costs the table's global indexes (GSI.html)."""
    charges: list[Charge] = []
    for index in table.global_indexes or ():
        old, new = _entry(index, before), _entry(index, after)
        name, hash_attr = _index_name(table, index), _index_hash(index)
        same_key = (
            old is not None
            and new is not None
            and all(old.attrs[key] == new.attrs[key] for key in index.schema_key_attrs)
        )
        if same_key:
            if old.attrs != new.attrs:  # only projected attributes changed: one write
                charges.append(_index_write(name, hash_attr, new, max(item_size(old.attrs), item_size(new.attrs))))
            continue
        # The index key changed (a delete and a put), or the entry appeared or went (one of them).
        charges += [
            _index_write(name, hash_attr, entry, item_size(entry.attrs)) for entry in (old, new) if entry is not None
        ]
    return charges


class _Target:
    """One item a request reads or writes: its table, key, and the item as it was before the request."""

    def __init__(self, backend: Any, table_name: str, key: Mapping[str, Any], *, copied: bool = False) -> None:
        self.backend = backend
        self.table = backend.get_table(table_name)
        self.key = key
        self.partition = key_text(key[self.table.hash_key_attr])
        # UpdateItem changes the stored item in place: keep it as it was.
        stored = self.stored()
        self.before = copy.deepcopy(stored) if copied else stored

    @classmethod
    def of_item(cls, backend: Any, table_name: str, item: Mapping[str, Any]) -> _Target:
        table = backend.get_table(table_name)
        return cls(backend, table_name, {name: item[name] for name in table.table_key_attrs})

    def stored(self) -> Any:
        hash_value, range_value = self.backend.get_keys_value(self.table, self.key)
        return self.table.get_item(hash_value, range_value)

    def read(self, *, consistent: bool, transactional: bool = False) -> Charge:
        units = read_units(_size(self.before), consistent=consistent, transactional=transactional)
        return Charge("rcu", self.table.name, self.partition, units)

    def written(self, factor: int = 1) -> list[Charge]:
        """The write as it went: the larger of the sizes before and after, and what it did to the indexes."""
        after = self.stored()
        units = write_units(max(_size(self.before), _size(after))) * factor
        return [Charge("wcu", self.table.name, self.partition, units), *_index_writes(self.table, self.before, after)]

    def refused(self, new_item: Mapping[str, Any] | None = None, factor: int = 1) -> Charge:
        """A write that did not happen: the larger of the item there and the one it would have written."""
        size = max(_size(self.before), item_size(new_item) if new_item is not None else 0)
        return Charge("wcu", self.table.name, self.partition, write_units(size) * factor)


# ---------------------------------------------------------------------------------------------- meters

_patches = Patches()
_meters: list[Meter] = []


def _charge(charges: list[Charge]) -> None:
    for meter in list(_meters):
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
    target = _Target(handler.dynamodb_backend, body["TableName"], body["Key"])
    _charge([target.read(consistent=bool(body.get("ConsistentRead")))])
    return result


def _batch_get_item(handler: Any, original: Callable[[Any], Any]) -> Any:
    requested = handler.body["RequestItems"]
    result = original(handler)
    charges = [
        _Target(handler.dynamodb_backend, table_name, key).read(consistent=bool(request.get("ConsistentRead")))
        for table_name, request in requested.items()
        for key in request["Keys"]
    ]
    _charge(charges)
    return result


def _transact_get_items(handler: Any, original: Callable[[Any], Any]) -> Any:
    gets = [entry["Get"] for entry in handler.body["TransactItems"]]
    result = original(handler)
    backend = handler.dynamodb_backend
    _charge([_Target(backend, get["TableName"], get["Key"]).read(consistent=True, transactional=True) for get in gets])
    return result


def _single_write(new_item: bool = False, copied: bool = False) -> Metered:
    """PutItem (`new_item`: the key is the item's), UpdateItem (`copied`: changed in place) or DeleteItem."""

    def write(handler: Any, original: Callable[[Any], Any]) -> Any:
        body = handler.body
        try:
            if new_item:
                target = _Target.of_item(handler.dynamodb_backend, body["TableName"], body["Item"])
            else:
                target = _Target(handler.dynamodb_backend, body["TableName"], body["Key"], copied=copied)
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
            _Target.of_item(backend, table_name, request["PutRequest"]["Item"])
            if "PutRequest" in request
            else _Target(backend, table_name, request["DeleteRequest"]["Key"])
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
    actions: list[tuple[str, Mapping[str, Any], _Target]] = []
    try:
        for entry in handler.body["TransactItems"]:
            action, op = next(iter(entry.items()))
            if action == "Put":
                target = _Target.of_item(backend, op["TableName"], op["Item"])
            else:
                target = _Target(backend, op["TableName"], op["Key"], copied=action == "Update")
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
            if not _meters:
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
            return _index_name(table, index), _index_hash(index), True
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
        if not _meters:
            return original(self, *args, **kwargs)
        (results, scanned, last), (filter_expression, projection), arguments = call(self, *args, **kwargs)
        name, _, is_global = _read_target(self, arguments["index_name"])
        hash_key = arguments["hash_key"]
        if hash_key is None and arguments["hash_key_conditions"]:
            hash_key = arguments["hash_key_conditions"][0][1]
        partition = key_text(hash_key) if hash_key is not None else ""
        consistent = bool(arguments["consistent_read"]) and not is_global
        size = sum(_size(item) for item in results)
        _charge([Charge("rcu", name, partition, read_units(size, consistent=consistent))])
        return _filtered(results, filter_expression, projection), scanned, last

    return query


def _metered_scan(original: Any) -> Any:
    call = _unfiltered(original, "projection_expression")

    @functools.wraps(original)
    def scan(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _meters:
            return original(self, *args, **kwargs)
        (results, scanned, last), (filter_expression, projection), arguments = call(self, *args, **kwargs)
        name, hash_attr, is_global = _read_target(self, arguments["index_name"])
        consistent = bool(arguments["consistent_read"]) and not is_global
        sizes: defaultdict[str, int] = defaultdict(int)
        for item in results:
            sizes[key_text(item.attrs[hash_attr])] += _size(item)
        # A scan that read nothing still costs the minimum, on no partition key.
        charges = [
            Charge("rcu", name, partition, read_units(size, consistent=consistent)) for partition, size in sizes.items()
        ]
        _charge(charges or [Charge("rcu", name, "", read_units(0, consistent=consistent))])
        return _filtered(results, filter_expression, projection), scanned, last

    return scan


# ------------------------------------------------------------------------------------------ lifecycle


def attach(meter: Meter) -> None:
    """Charge every DynamoDB request from now on to `meter` too (patching moto while any meter is attached)."""
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    with _patches.lock:
        if meter not in _meters:
            _meters.append(meter)
        for name, operation in _HANDLED.items():
            _patches.patch(DynamoHandler, name, _metering(operation))
        _patches.patch(Table, "query", _metered_query)
        _patches.patch(Table, "scan", _metered_scan)


def detach(meter: Meter) -> None:
    """Charge nothing more to `meter`; moto's own methods are back once no meter is attached (idempotent)."""
    with _patches.lock:
        if meter in _meters:
            _meters.remove(meter)
        if not _meters:
            _patches.undo()


@contextlib.contextmanager
def metered(clock: Callable[[], float] = time.time) -> Iterator[Meter]:
    """Meter every DynamoDB call moto serves in this process for the block (works under plain moto.mock_aws())."""
    meter = Meter(clock)
    attach(meter)
    try:
        yield meter
    finally:
        detach(meter)
