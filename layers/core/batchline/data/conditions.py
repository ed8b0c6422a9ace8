"""boto3's DynamoDB condition builders, loaded when the first condition is built, not with the data layer.

`from boto3.dynamodb.conditions import Attr` imports boto3 whole (botocore's session and clients,
s3transfer, urllib3, multiprocessing): over 100 ms of the api function's cold start, which a request
answered before any AWS call (a 401) need not pay. Write `conditions.Attr(...)` where the condition is
built, not `from batchline.data.conditions import Attr`, which would load boto3 at import again.
`absent` is the one condition every aggregate shares, built here the same way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boto3.dynamodb.conditions import Attr, ConditionBase, Key

    __all__ = ["Attr", "ConditionBase", "Key", "absent"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        # The import system asks a module for `__path__` and the like; answering would load boto3.
        raise AttributeError(name)
    return getattr(importlib.import_module("boto3.dynamodb.conditions"), name)


def absent(name: str) -> ConditionBase:
    """The attribute is not there: never written, or written as null (a model's None)."""
    attr = __getattr__("Attr")  # a global lookup would not reach the module's __getattr__
    return attr(name).not_exists() | attr(name).attribute_type("NULL")
