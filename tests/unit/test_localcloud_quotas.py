"""localcloud.quotas refuses what DynamoDB, EventBridge and Step Functions refuse, and only that."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from localcloud.quotas import DYNAMODB_ITEM_BYTES, EVENTBRIDGE_ENTRY_BYTES, check, item_bytes


def test_item_size_counts_names_and_values_in_both_forms() -> None:
    assert item_bytes({"pk": {"S": "héllo"}}) == 2 + 6
    assert item_bytes({"pk": "héllo"}) == 2 + 6
    assert item_bytes({"n": {"N": "12345"}}) == 1 + 4


def test_an_item_over_400_kb_is_refused_and_one_at_the_limit_is_not() -> None:
    fits = {"pk": "a", "v": "x" * (DYNAMODB_ITEM_BYTES - 4)}
    check("dynamodb", "PutItem", {"TableName": "t", "Item": fits})
    with pytest.raises(ClientError, match="Item size has exceeded"):
        check("dynamodb", "PutItem", {"TableName": "t", "Item": {**fits, "w": "y"}})


def test_a_transaction_over_4_mb_is_refused() -> None:
    puts = [{"Put": {"TableName": "t", "Item": {"pk": {"S": str(i)}, "v": {"S": "x" * 390_000}}}} for i in range(11)]
    with pytest.raises(ClientError, match="larger than 4 MB"):
        check("dynamodb", "TransactWriteItems", {"TransactItems": puts})
    check("dynamodb", "TransactWriteItems", {"TransactItems": puts[:10]})


def test_an_event_over_256_kb_is_refused() -> None:
    entry = {"Source": "batchline", "DetailType": "Batch Completed"}
    room = EVENTBRIDGE_ENTRY_BYTES - len("batchline") - len("Batch Completed")
    check("events", "PutEvents", {"Entries": [{**entry, "Detail": "x" * room}]})
    with pytest.raises(ClientError, match="over the limit"):
        check("events", "PutEvents", {"Entries": [{**entry, "Detail": json.dumps({"s": "é" * (room // 2)})}]})


def test_an_execution_input_over_256_kib_of_utf8_is_refused_as_step_functions_refuses_it() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:batch"
    at_the_limit = json.dumps({"s": "x" * (256 * 1024 - len('{"s": ""}'))})
    check("stepfunctions", "StartExecution", {"stateMachineArn": arn, "input": at_the_limit})
    # As many characters, some of them two bytes in UTF-8: what counts is bytes.
    over = at_the_limit.replace("x", "é", 1)

    with pytest.raises(ClientError) as refused:
        check("stepfunctions", "StartExecution", {"stateMachineArn": arn, "input": over})

    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value at 'input' failed to satisfy constraint: "
        "Member must have size less than or equal to 262144 bytes in UTF-8 encoding",
    }
