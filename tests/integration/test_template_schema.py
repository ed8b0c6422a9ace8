"""The table the code uses is the table template.yaml creates."""

from __future__ import annotations

from typing import Any

from batchline.store import INDEX_ATTRS, INDEX_NAME, KEY_ATTRS


def _keys(schema: list[dict[str, str]]) -> tuple[str, ...]:
    order = {"HASH": 0, "RANGE": 1}
    return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: order[k["KeyType"]]))


def test_the_table_key_schema_is_the_one_the_store_uses(template: dict[str, Any]) -> None:
    props = template["Resources"]["Table"]["Properties"]
    assert _keys(props["KeySchema"]) == KEY_ATTRS
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert all(types[name] == "S" for name in (*KEY_ATTRS, *INDEX_ATTRS))


def test_the_listing_index_is_the_one_the_store_queries(template: dict[str, Any]) -> None:
    indexes = {i["IndexName"]: i for i in template["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"]}
    assert _keys(indexes[INDEX_NAME]["KeySchema"]) == INDEX_ATTRS
    # Lists answer whole objects from the index, so it must carry every attribute.
    assert indexes[INDEX_NAME]["Projection"]["ProjectionType"] == "ALL"


def test_the_api_function_gets_every_setting_its_config_requires(template: dict[str, Any]) -> None:
    from batchline.config import ApiSettings

    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"])
    required = {name.upper() for name, field in ApiSettings.model_fields.items() if field.is_required()}
    assert required <= set(env)
