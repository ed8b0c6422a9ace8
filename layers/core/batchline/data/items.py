"""The table's schema: how an object becomes an item, and the key, index and TTL attributes it is stored under.

Plain data, no DynamoDB call: template.yaml's KeySchema and index must agree with these names
(tests/integration/test_template_schema.py holds them together).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

KEY_ATTRS = ("pk", "sk")
INDEX_NAME = "gsi1"
INDEX_ATTRS = ("gsi1pk", "gsi1sk")
TTL_ATTR = "ttl"
ADMIN_OWNER = "admin"
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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def stored(kind: str, model: BaseModel, *, owner: str | None) -> dict[str, Any]:
    """The stored form of an object: addressed by id, listed under its owner in creation order."""
    item = to_item(model)
    item.update(pk=item["id"], sk=kind)
    if owner is not None:
        item.update(gsi1pk=f"{owner}#{kind}", gsi1sk=f"{_now_ms():013d}#{item['id']}")
    # DynamoDB's TTL removes an expired object's record; the sweeper then removes its bytes.
    if isinstance(item.get("expires_at"), int | Decimal) and kind == "file":
        item[TTL_ATTR] = item["expires_at"]
    return item


def update_expression(
    set_: dict[str, Any] | None, add: dict[str, int | float] | None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """SET and ADD attributes as one UpdateExpression, with its placeholders' names and values.

    A dotted name is a path into a map (request_counts.failed), one placeholder per part.
    """
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def path(tag: str, name: str) -> str:
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
    return expression, names, values
