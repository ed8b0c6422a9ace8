"""Only `batchline/data` reaches the DynamoDB table or a boto3 resource: the rest of the core and the functions go
through the Store's aggregates, so every status change stays a conditional write in the data layer.

Read from the source's syntax tree, not by importing it: a bypass is caught whether or not a test runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core" / "batchline"
DATA = CORE / "data"
# What must stay inside the data layer: the modules that hold the table's calls, and DynamoDB's own builders.
SEALED_MODULES = ("batchline.data.table", "batchline.data.dynamodb", "boto3.dynamodb")
SEALED_ATTRIBUTES = {"table", "_table", "resource"}
TABLE_CLASSES = {"Table", "DynamoTable"}
# The Store builds the table and hands it to each aggregate: that much, and nothing more, is allowed there.
COMPOSER = CORE / "store.py"


def reaches(source: str, *, composer: bool = False) -> list[str]:
    """How a module's source reaches the table, one line each (`<line>: <what>`); [] if it does not.

    `composer`: the module that builds the table (the Store) may import and construct it and pass `self._table`
    on, but never use it itself (`self._table.get_keys(...)` is a bypass there too).
    """
    tree = ast.parse(source)
    used = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}  # x.<attr> whose x is an attribute
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in SEALED_ATTRIBUTES:
            if not (composer and node.attr == "_table" and id(node) not in used):
                found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in TABLE_CLASSES and not composer:
                found.append(f"{node.lineno}: {name}(...)")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.startswith(SEALED_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
            if composer and names == ["batchline.data.table.Table"]:
                continue
            if node.module.startswith(SEALED_MODULES) or any(n.startswith(SEALED_MODULES) for n in names):
                found.append(f"{node.lineno}: from {node.module} import {', '.join(a.name for a in node.names)}")
            elif node.module == "boto3" and any(a.name == "resource" for a in node.names):
                found.append(f"{node.lineno}: from boto3 import resource")
    return found


def outside_the_data_layer() -> list[Path]:
    modules = [*CORE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    return sorted(p for p in modules if DATA not in p.parents)


def test_nothing_outside_the_data_layer_reaches_the_table_or_a_boto3_resource() -> None:
    # Given every module of the core outside batchline/data, and every function's
    modules = outside_the_data_layer()
    assert len(modules) > 20  # the walk found the code, not an empty folder
    # When each is read for a way to the table
    bypasses = [
        f"{p.relative_to(ROOT)}:{where}" for p in modules for where in reaches(p.read_text(), composer=p == COMPOSER)
    ]
    # Then there is none: what they need is an aggregate's method (store.batches.cancel, store.rates, ...)
    assert bypasses == [], "Reach the table through batchline.data, not around it:\n" + "\n".join(bypasses)


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ('store._table.get("batch", batch_id)', "1: ._table"),
        ('store.table.update("batch", batch_id, set_={})', "1: .table"),
        ("RateLimiter(store._table.resource)", "1: ._table"),
        ('boto3.resource("dynamodb").Table("t")', "1: .resource"),
        ('Table("t")', "1: Table(...)"),
        ("from batchline.data.table import Table", "1: from batchline.data.table import Table"),
        ("from batchline.data import table", "1: from batchline.data import table"),
        ("import batchline.data.dynamodb", "1: import batchline.data.dynamodb"),
        ("from boto3.dynamodb.conditions import Attr", "1: from boto3.dynamodb.conditions import Attr"),
        ("from boto3 import resource", "1: from boto3 import resource"),
    ],
)
def test_each_way_around_the_data_layer_is_caught(source: str, caught: str) -> None:
    assert caught in reaches(source)


def test_the_store_may_build_the_table_and_hand_it_on_but_not_use_it() -> None:
    built = "from batchline.data.table import Table\nself._table = Table(name)\nself.files = Files(self._table)"
    assert reaches(built, composer=True) == []
    assert reaches(built) == ["1: from batchline.data.table import Table", "2: ._table", "2: Table(...)", "3: ._table"]
    assert reaches("self._table.get_keys([key])", composer=True) == ["1: ._table"]
    assert reaches("from batchline.data.table import Table, absent", composer=True) != []


def test_the_data_layers_own_aggregates_are_not_bypasses() -> None:
    # What a caller may write: an aggregate of the store, the data layer's other modules
    source = "from batchline.data.contention import Backoff\nstore.batches.cancel(batch_id)\nstore.rates.count(k, 1, 2)"
    assert reaches(source) == []
