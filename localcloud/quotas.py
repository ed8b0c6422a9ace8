"""Service quotas moto does not enforce, refused before the call as the service refuses it.

moto accepts a PutItem of any size, a transaction over 4 MB, a PutEvents entry of any size and a
StartExecution input of any size; AWS refuses each with a ValidationException. Checked for every caller
(quotas apply to everyone), from the same botocore hook that authorizes calls (localcloud.iam).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

DYNAMODB_ITEM_BYTES = 400 * 1024
DYNAMODB_TRANSACTION_BYTES = 4 * 1024 * 1024
DYNAMODB_TRANSACTION_ITEMS = 100
EVENTBRIDGE_ENTRY_BYTES = 256 * 1024
STEP_FUNCTIONS_INPUT_BYTES = 256 * 1024

_TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def _number_bytes(text: str) -> int:
    digits = len(text.lstrip("-").replace(".", "").lstrip("0")) or 1
    return (digits + 1) // 2 + 1


def value_bytes(value: Any) -> int:
    """DynamoDB's size of one attribute value (typed, as the client API has it, or plain, as the resource API)."""
    if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in _TYPES:
        kind, inner = next(iter(value.items()))
        if kind == "S":
            return len(inner.encode("utf-8", "surrogatepass"))
        if kind == "N":
            return _number_bytes(str(inner))
        if kind == "B":
            return len(inner)
        if kind in ("SS", "NS", "BS"):
            return sum(value_bytes({kind[0]: v}) for v in inner)
        if kind == "M":
            return 3 + item_bytes(inner)
        if kind == "L":
            return 3 + sum(1 + value_bytes(v) for v in inner)
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return _number_bytes(str(value))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + item_bytes(value)
    if isinstance(value, list | tuple | set | frozenset):
        return 3 + sum(1 + value_bytes(v) for v in value)
    return len(str(value))


def item_bytes(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + value_bytes(value) for name, value in item.items())


def _refuse(operation: str, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ValidationException", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        operation,
    )


def _entry_bytes(entry: Mapping[str, Any]) -> int:
    # EventBridge's own rule: Time counts 14 bytes, the strings by their UTF-8 length.
    size = 14 if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode("utf-8", "surrogatepass"))
    return size + sum(len(r.encode("utf-8")) for r in entry.get("Resources", []))


def check(service: str, operation: str, params: Mapping[str, Any]) -> None:
    """Raise the service's ValidationException for a call over one of its quotas."""
    if service == "dynamodb" and operation == "PutItem":
        if item_bytes(params.get("Item", {})) > DYNAMODB_ITEM_BYTES:
            raise _refuse(operation, "Item size has exceeded the maximum allowed size")
    elif service == "dynamodb" and operation == "TransactWriteItems":
        items = params.get("TransactItems", [])
        if len(items) > DYNAMODB_TRANSACTION_ITEMS:
            raise _refuse(operation, f"Member must have length less than or equal to {DYNAMODB_TRANSACTION_ITEMS}")
        total = 0
        for entry in items:
            for body in entry.values():
                size = item_bytes(body.get("Item", {})) + item_bytes(body.get("Key", {}))
                size += sum(value_bytes(v) for v in body.get("ExpressionAttributeValues", {}).values())
                if "Item" in body and item_bytes(body["Item"]) > DYNAMODB_ITEM_BYTES:
                    raise _refuse(operation, "Item size has exceeded the maximum allowed size")
                total += size
        if total > DYNAMODB_TRANSACTION_BYTES:
            raise _refuse(operation, "Transaction request cannot be larger than 4 MB")
    elif service == "stepfunctions" and operation == "StartExecution":
        # The API's length constraint on `input`, in bytes of UTF-8 (botocore checks only minimum lengths).
        if len(str(params.get("input", "")).encode("utf-8", "surrogatepass")) > STEP_FUNCTIONS_INPUT_BYTES:
            raise _refuse(
                operation,
                "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                f"Member must have size less than or equal to {STEP_FUNCTIONS_INPUT_BYTES} bytes in UTF-8 encoding",
            )
    elif service == "events" and operation == "PutEvents":
        total = sum(_entry_bytes(entry) for entry in params.get("Entries", []))
        if total > EVENTBRIDGE_ENTRY_BYTES:
            raise _refuse(operation, "Total size of the entries in the request is over the limit.")
