"""DynamoDB's capacity arithmetic: item sizes, the units of a read and of a write, what a write costs the indexes.

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

"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

KB = 1024
READ_UNIT_BYTES = 4 * KB
WRITE_UNIT_BYTES = KB
# Both phases of a transaction: prepare and commit.
TRANSACTIONAL = 2


class Charge(NamedTuple):
    """Units of one kind ("rcu" or "wcu") one request consumed on one partition key."""

    kind: str
    table: str
    partition: str
    units: float


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


def stored_size(item: Any) -> int:
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


def billed_name(table: Any, index: Any) -> str:
    """What a global index's units are billed to: `<table>/index/<index>`."""
    return f"{table.name}/index/{index.name}"


def index_hash(index: Any) -> str:
    """The partition key attribute of an index."""
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
        name, hash_attr = billed_name(table, index), index_hash(index)
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


class Target:
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
    def of_item(cls, backend: Any, table_name: str, item: Mapping[str, Any]) -> Target:
        table = backend.get_table(table_name)
        return cls(backend, table_name, {name: item[name] for name in table.table_key_attrs})

    def stored(self) -> Any:
        hash_value, range_value = self.backend.get_keys_value(self.table, self.key)
        return self.table.get_item(hash_value, range_value)

    def read(self, *, consistent: bool, transactional: bool = False) -> Charge:
        units = read_units(stored_size(self.before), consistent=consistent, transactional=transactional)
        return Charge("rcu", self.table.name, self.partition, units)

    def written(self, factor: int = 1) -> list[Charge]:
        """The write as it went: the larger of the sizes before and after, and what it did to the indexes."""
        after = self.stored()
        units = write_units(max(stored_size(self.before), stored_size(after))) * factor
        return [Charge("wcu", self.table.name, self.partition, units), *_index_writes(self.table, self.before, after)]

    def refused(self, new_item: Mapping[str, Any] | None = None, factor: int = 1) -> Charge:
        """A write that did not happen: the larger of the item there and the one it would have written."""
        size = max(stored_size(self.before), item_size(new_item) if new_item is not None else 0)
        return Charge("wcu", self.table.name, self.partition, write_units(size) * factor)
