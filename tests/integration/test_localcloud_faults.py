"""Injected AWS faults reach a function's calls as AWS's own answers would, through botocore's retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import faults, iam
from localcloud.patching import installed

WORKER = iam.Principal("WorkerFunction", "worker-role", ({"Effect": "Allow", "Action": "*", "Resource": "*"},))


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws(), installed(iam, faults):
        client = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 3}))
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_a_single_throttle_is_retried_away_by_botocore_as_on_aws(table: Any) -> None:
    (fault,) = [faults.inject(faults.Fault.throttling("WorkerFunction", "dynamodb", operation="GetItem"))]
    with iam.acting_as(WORKER):
        assert "Item" not in table.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert fault.hits == 1


def test_throttling_that_outlasts_the_retries_reaches_the_caller(table: Any) -> None:
    faults.inject(faults.Fault.throttling("WorkerFunction", "dynamodb", times=10))
    with iam.acting_as(WORKER), pytest.raises(ClientError) as raised:
        table.put_item(TableName="t", Item={"pk": {"S": "a"}})
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert "Item" not in table.get_item(TableName="t", Key={"pk": {"S": "a"}})  # unchecked caller: no fault


def test_a_transaction_conflict_is_the_modelled_error_with_its_reasons(table: Any) -> None:
    faults.inject(faults.Fault.transaction_conflict("WorkerFunction"))
    item = {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}}
    with iam.acting_as(WORKER):
        with pytest.raises(table.exceptions.TransactionCanceledException) as raised:
            table.transact_write_items(TransactItems=[item])
        assert raised.value.response["CancellationReasons"][0]["Code"] == "TransactionConflict"
        table.transact_write_items(TransactItems=[item])  # spent after one hit
    assert table.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]


def test_faults_hit_only_the_function_they_name(table: Any) -> None:
    faults.inject(faults.Fault.throttling("PlanFunction", "dynamodb", times=10))
    with iam.acting_as(WORKER):
        table.put_item(TableName="t", Item={"pk": {"S": "a"}})
    assert [f.hits for f in faults.clear()] == [0]


def test_s3_faults_come_in_s3s_own_error_shape() -> None:
    with mock_aws(), installed(iam, faults):
        s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 2}))
        s3.create_bucket(Bucket="bucket-b")
        faults.inject(faults.Fault("WorkerFunction", "s3", "InternalError", operation="PutObject", times=5))
        with iam.acting_as(WORKER), pytest.raises(ClientError) as raised:
            s3.put_object(Bucket="bucket-b", Key="k", Body=b"x")
        assert raised.value.response["Error"]["Code"] == "InternalError"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
