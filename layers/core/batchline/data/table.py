"""The table as the aggregates address it: objects by kind and id, owned by a tenant, with domain errors.

One table. Each object is addressed by its own id (`pk` = id, `sk` = kind), so a worker or an admin
can read it without knowing its tenant; reads on behalf of a tenant check ownership and answer
NotFound for anyone else's object. `gsi1` lists a tenant's objects of one kind in creation order.
A failed condition becomes a domain error here (or a value, in `dynamodb`), so no aggregate handles a
ClientError itself. Only the data layer reaches a Table: tests/unit/test_data_sealed.py keeps it so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from batchline.data import conditions
from batchline.data.contention import throttled as throttled  # budgets imports it from here
from batchline.data.dynamodb import DynamoTable, failed_condition
from batchline.data.items import (
    INDEX_ATTRS,
    INDEX_NAME,
    KEY_ATTRS,
    MAX_KEY_BYTES,
    NAMES,
    stored,
    update_expression,
)
from batchline.errors import BatchlineError, Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from batchline.data.conditions import ConditionBase


class Table(DynamoTable):
    """One DynamoDB table, its objects addressed by kind and id."""

    @staticmethod
    def item(kind: str, model: BaseModel, *, owner: str | None) -> dict[str, Any]:
        """The stored form of an object: addressed by id, listed under its owner in creation order."""
        return stored(kind, model, owner=owner)

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """An object's item by id alone, whoever owns it; None if there is none."""
        if not object_id or len(object_id.encode()) > MAX_KEY_BYTES:
            return None  # no object has such an id, and DynamoDB would refuse it as a key
        return self.get_key({"pk": object_id, "sk": kind})

    def get_owned(self, kind: str, tenant_id: str, object_id: str, *, param: str = "id") -> dict[str, Any]:
        """An object's item if `tenant_id` owns it; NotFound (never Forbidden) for anyone else's."""
        item = self.get(kind, object_id)
        if item is None or item.get("tenant_id", item.get("tenant")) != tenant_id:
            raise NotFound(f"No such {NAMES.get(kind, kind)} object: {object_id}", param=param)
        return item

    def list_owned(
        self,
        kind: str,
        owner: str,
        *,
        after: str | None,
        limit: int,
        newest_first: bool,
        filter_: ConditionBase | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of an owner's objects and whether more follow; `after` is the last id seen."""
        query: dict[str, Any] = {
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": conditions.Key("gsi1pk").eq(f"{owner}#{kind}"),
            "ScanIndexForward": not newest_first,
        }
        if filter_ is not None:
            query["FilterExpression"] = filter_
        if after:
            cursor = self.get(kind, after)
            if cursor is None or cursor.get("gsi1pk") != f"{owner}#{kind}":
                raise InvalidRequest(f"Invalid 'after': {after} is not an id from this list.", param="after")
            query["ExclusiveStartKey"] = {k: cursor[k] for k in (*KEY_ATTRS, *INDEX_ATTRS)}
        items: list[dict[str, Any]] = []
        # One item more than asked tells whether another page exists; a filter may need several queries.
        while len(items) <= limit:
            page = self.resource.query(Limit=limit + 1 - len(items), **query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[:limit], len(items) > limit

    def put_new(self, kind: str, model: BaseModel, *, owner: str | None) -> None:
        item = self.item(kind, model, owner=owner)
        if not self.put_if_absent(item):
            raise Conflict(f"{NAMES.get(kind, kind)} {item['id']} already exists.")

    def update(
        self,
        kind: str,
        object_id: str,
        *,
        set_: dict[str, Any] | None = None,
        add: dict[str, int | float] | None = None,
        condition: ConditionBase | None = None,
        conflict: str | BatchlineError = "The object changed state; try again.",
    ) -> dict[str, Any]:
        """One conditional write: SET and ADD attributes; the item as it is afterwards.

        A failed condition (or a missing item) raises `conflict` (a message makes it a Conflict).
        """
        expression, names, values = update_expression(set_, add)
        exists = conditions.Attr("pk").exists()
        try:
            answer = self.resource.update_item(
                Key={"pk": object_id, "sk": kind},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=exists & condition if condition is not None else exists,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if failed_condition(exc):
                raise (Conflict(conflict) if isinstance(conflict, str) else conflict) from exc
            raise
        return answer["Attributes"]  # type: ignore[no-any-return]

    def delete(self, kind: str, object_id: str, *, condition: ConditionBase | None = None, conflict: str = "") -> None:
        """Delete an item; with a `condition`, a Conflict saying `conflict` when it does not hold."""
        if condition is None:
            self.resource.delete_item(Key={"pk": object_id, "sk": kind})
            return
        try:
            self.resource.delete_item(Key={"pk": object_id, "sk": kind}, ConditionExpression=condition)
        except ClientError as exc:
            if failed_condition(exc):
                raise Conflict(conflict) from exc
            raise
