"""Every DynamoDB call the data layer makes, on one table, by raw key: reads, writes, transactions, queries.

A failed condition comes back as a value here (False, None, the item as it is, a refused action's name),
never as a ClientError, so no aggregate handles one itself. `table.Table` builds the aggregates' kind-and-id
addressing on top of these.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from batchline.data import conditions
from batchline.data.items import KEY_ATTRS
from batchline.data.transactions import Action, Transaction

if TYPE_CHECKING:
    from batchline.data.conditions import ConditionBase


def _typed_item(exc: ClientError) -> dict[str, Any]:
    """The item a failed condition returned (or {}): in DynamoDB's typed form, as error bodies are not
    deserialized for us."""
    from boto3.dynamodb.types import TypeDeserializer  # deferred: boto3 on first use (see conditions)

    found = exc.response.get("Item") or {}
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in found.items()}


def failed_condition(exc: ClientError) -> bool:
    code: str = exc.response["Error"]["Code"]
    return code == "ConditionalCheckFailedException"


class DynamoTable:
    """One DynamoDB table; the boto3 resource is created on first use."""

    def __init__(self, name: str, *, dynamodb: Any = None) -> None:
        self.name = name
        self._dynamodb = dynamodb

    @cached_property
    def resource(self) -> Any:
        """The boto3 Table (tests reach the client under it to inject DynamoDB's answers)."""
        return self._service.Table(self.name)

    @cached_property
    def _service(self) -> Any:
        """The DynamoDB service resource the Table belongs to: BatchGetItem is the service's, not a table's."""
        import boto3  # deferred: importing boto3 is 100 ms of cold start (see conditions)

        return self._dynamodb or boto3.resource("dynamodb")

    # ------------------------------------------------------------------------------------ reads

    def get_key(self, key: dict[str, Any], *, consistent: bool = False) -> dict[str, Any] | None:
        """The item at a key, as stored; None if there is none."""
        params: dict[str, Any] = {"Key": key}
        if consistent:
            params["ConsistentRead"] = True
        item: dict[str, Any] | None = self.resource.get_item(**params).get("Item")
        return item

    def get_keys(self, keys: list[dict[str, Any]], *, consistent: bool = False) -> list[dict[str, Any] | None]:
        """The items at several keys in one BatchGetItem (at most 100), in the keys' order; None where none is.

        DynamoDB may leave keys unprocessed under load: those are asked again until all are answered.
        """
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        request: dict[str, Any] = {self.name: {"Keys": keys, "ConsistentRead": consistent}}
        while request:
            answer = self._service.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(self.name, []):
                found[tuple(item[name] for name in KEY_ATTRS)] = item
            request = answer.get("UnprocessedKeys") or {}
        return [found.get(tuple(key[name] for name in KEY_ATTRS)) for key in keys]

    def get_fields(self, key: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any] | None:
        """Only the named attributes of the item at a key (eventually consistent): a poll that reads little."""
        answer = self.resource.get_item(
            Key=key,
            ProjectionExpression=", ".join(f"#a{i}" for i in range(len(names))),
            ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(names)},
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def query_all(self, **query: Any) -> list[dict[str, Any]]:
        """Every item a query matches, across DynamoDB's pages."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.resource.query(**query)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------------------------------ conditional writes

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        """Write an item that must be new; False if one with its key is there already."""
        try:
            self.resource.put_item(Item=item, ConditionExpression=conditions.Attr("pk").not_exists())
        except ClientError as exc:
            if failed_condition(exc):
                return False
            raise
        return True

    def put_if(self, item: dict[str, Any], condition: ConditionBase) -> dict[str, Any] | None:
        """Write an item only if `condition` holds: None when written, else the item as it is (or {} if none).

        The item that failed the condition comes back with the failure (ReturnValuesOnConditionCheckFailure),
        so a writer that lost a race can try again without reading first.
        """
        try:
            self.resource.put_item(
                Item=item, ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD"
            )
        except ClientError as exc:
            if failed_condition(exc):
                return _typed_item(exc)
            raise
        return None

    def update_or_current(
        self, key: dict[str, Any], expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """An update of an existing item written only if `condition` holds: None when written, else the item as
        it is (or {} if none), returned with the failure as put_if's is."""
        try:
            self.resource.update_item(
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if failed_condition(exc):
                return _typed_item(exc)
            raise
        return None

    def update_if(
        self,
        key: dict[str, Any],
        expression: str,
        condition: ConditionBase,
        names: dict[str, str],
        values: dict[str, Any] | None = None,
    ) -> bool:
        """An update written only when `condition` holds (an expression SET/ADD cannot say); False if not."""
        return self.updated_if(key, expression, condition, names, values, returning="NONE") is not None

    def updated_if(
        self,
        key: dict[str, Any],
        expression: str,
        condition: ConditionBase | str,
        names: dict[str, str],
        values: dict[str, Any] | None = None,
        *,
        returning: str = "UPDATED_NEW",
    ) -> dict[str, Any] | None:
        """An update written only when `condition` holds: the attributes DynamoDB returns (`returning`, as
        ReturnValues says), or None if the condition failed."""
        params: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        if returning != "NONE":
            params["ReturnValues"] = returning
        try:
            answer = self.resource.update_item(
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **params,
            )
        except ClientError as exc:
            if failed_condition(exc):
                return None
            raise
        attributes: dict[str, Any] = answer.get("Attributes", {})
        return attributes

    # ------------------------------------------------------------------------------------ transactions

    def transaction(self) -> Transaction:
        """A transaction to build from named actions: `.update("batch", ...).put("file", ...).write()`."""
        return Transaction(self._transact)

    def _transact(self, *actions: Action) -> list[str | None]:
        """Write every action or none: [] when written, else each action's cancellation reason code, by position.

        Actions are (verb, parameters) such as ("Put", {"Item": ..., "ConditionExpression": ...}); the
        resource's client serializes plain Python values, as the Table does. Only `transaction()` sends
        them, so no caller reads a reason by its position.
        """
        try:
            self.resource.meta.client.transact_write_items(
                TransactItems=[{verb: {"TableName": self.name, **params}} for verb, params in actions]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return [r.get("Code") for r in exc.response.get("CancellationReasons", [])] or [None]
        return []
