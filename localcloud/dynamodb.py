"""DynamoDB's atomicity, which moto's backend lacks: one request at a time, and transactions all or nothing.

Each request is atomic on AWS; moto's server runs requests concurrently over plain dicts, so here every
request of the service runs behind DYNAMODB_LOCK (see localcloud.serialized).

Transactions that copy nothing: moto's TransactWriteItems deep-copied every table it touched before its
first write, to put the copy back if any item failed: O(table) CPU and memory per transaction, which at
50,000 lines was most of the local cloud's CPU. Here a transaction journals instead: before it writes an
item it keeps that item's attributes (one item, not the table), and a cancelled transaction puts back
exactly those items, in place, and truncates the stream shards it wrote to. Everything else, other tables,
other items, and writes that waited on the lock, is never touched. The stream records a transaction makes
are delivered only once it commits: on AWS a cancelled transaction wrote nothing, so it streams nothing.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from localcloud.patching import Patches
from localcloud.serialized import ServiceLock, serialized, until_committed

DYNAMODB_LOCK = ServiceLock("dynamodb")
# TransactWriteItems' own limit on the items of one transaction.
MAX_TRANSACTION_ITEMS = 100

_patches = Patches()


class _Journal:
    """What a transaction changed, so that cancelling it can put back exactly that."""

    def __init__(self) -> None:
        # (table name, hash, range) -> (table, the item object or None, a copy of its attributes)
        self.items: dict[tuple[str, Any, Any], tuple[Any, Any, Any]] = {}
        # table name -> (shard, its record list, the list's length) before the transaction's first write
        self.shards: dict[str, tuple[Any, list[Any], int]] = {}

    def before_write(self, table: Any, hash_value: Any, range_value: Any) -> None:
        key = (table.name, hash_value, range_value)
        if key not in self.items:
            item = table.get_item(hash_value, range_value)
            # UpdateItem changes the item in place: keep its attributes as they are now.
            self.items[key] = (table, item, None if item is None else copy.deepcopy(item.attrs))
        shard = table.stream_shard
        if shard is not None and table.name not in self.shards:
            self.shards[table.name] = (shard, shard.items, len(shard.items))

    def roll_back(self) -> None:
        for (_, hash_value, range_value), (table, item, attrs) in self.items.items():
            if item is not None:
                item.attrs = attrs
            if range_value is None:
                if item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
                continue
            bucket = table.items[hash_value]
            if item is None:
                bucket.pop(range_value, None)
                if not bucket:
                    del table.items[hash_value]
            else:
                bucket[range_value] = item
        for shard, records, length in self.shards.values():
            # The shard starts a new list after each delivery; the records before the transaction are in this one.
            del records[length:]
            shard.items = records


def _write_all(backend: Any, journal: _Journal, transact_items: list[dict[str, Any]]) -> None:
    """DynamoDBBackend.transact_write_items as moto has it, journaling each item before its write."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    targets: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        original_item: dict[str, Any] | None = None
        try:
            op_type, op = next(iter(entry.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                table = backend.get_table(table_name)
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in targets:
                raise MultipleTransactionsException()
            targets.add(unique)
            current = backend.get_item(table_name, key)
            if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                table = backend.get_table(table_name)
                journal.before_write(table, *backend.get_keys_value(table, key))
            if op_type == "Put":
                backend.put_item(
                    table_name, op["Item"], condition_expression=condition,
                    expression_attribute_names=names, expression_attribute_values=values,
                )  # fmt: skip
            elif op_type == "Delete":
                backend.delete_item(
                    table_name, key, condition_expression=condition,
                    expression_attribute_names=names, expression_attribute_values=values,
                )  # fmt: skip
            elif op_type == "Update":
                backend.update_item(
                    table_name, key, update_expression=op["UpdateExpression"],
                    condition_expression=condition, expression_attribute_names=names,
                    expression_attribute_values=values,
                )  # fmt: skip
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
        except Exception as exc:  # noqa: BLE001  # as moto: any failure of an item is its cancellation reason
            errors.append((type(exc).__name__, str(exc), original_item))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)


def _journaled_transact_write_items(original: Any) -> Any:
    """DynamoDBBackend.transact_write_items with a journal of items for its copies of tables."""
    from moto.dynamodb.exceptions import TooManyTransactionsException

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > MAX_TRANSACTION_ITEMS:
            raise TooManyTransactionsException()
        journal = _Journal()
        # Stream deliveries of the transaction's writes wait for its outcome.
        with until_committed() as commit:
            try:
                _write_all(self, journal, transact_items)
            except BaseException:
                journal.roll_back()
                raise
            commit()

    return transact_write_items


def install() -> None:
    """Serialize moto's DynamoDB and journal its transactions (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    with _patches.lock:
        _patches.patch(DynamoHandler, "call_action", serialized(DYNAMODB_LOCK))
        _patches.patch(DynamoDBBackend, "transact_write_items", _journaled_transact_write_items)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
