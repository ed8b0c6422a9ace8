"""AWS calls are judged and counted as their caller's, also those a client makes on threads of its own."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import iam, metering
from localcloud.patching import installed

READS = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
READER = iam.Principal("ReaderFunction", "reader-role", (READS,))
WRITER = iam.Principal("WriterFunction", "writer-role", ({"Effect": "Allow", "Action": "s3:*", "Resource": "*"},))


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws(), installed(iam):
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket-m")
        yield client


def test_an_upload_on_s3transfers_threads_is_refused_to_a_role_without_put_object(s3: Any) -> None:
    """boto3's upload_fileobj sends from a thread pool, where the caller's role was lost: unchecked, as no one."""
    with iam.acting_as(READER), pytest.raises(ClientError) as refused:
        s3.upload_fileobj(io.BytesIO(b"x"), "bucket-m", "k")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket-m")


def test_calls_are_counted_by_caller_service_and_operation(s3: Any) -> None:
    before = metering.snapshot()
    with iam.acting_as(WRITER):
        s3.upload_fileobj(io.BytesIO(b"x"), "bucket-m", "k")
        s3.get_object(Bucket="bucket-m", Key="k")["Body"].read()
    s3.head_object(Bucket="bucket-m", Key="k")

    counted = metering.difference(metering.snapshot(), before)["api_calls"]

    assert counted == {
        "WriterFunction": {"s3": {"PutObject": 1, "GetObject": 1}},
        metering.UNATTRIBUTED: {"s3": {"HeadObject": 1}},
    }


def test_the_most_invocations_of_a_function_running_at_once_are_kept_since_the_last_reset() -> None:
    # In AWS each runs in its own sandbox; here they share one process, whose memory grows with them.
    metering.reset()
    with metering.running("WorkerFunction"), metering.running("WorkerFunction"):
        with metering.running("PlanFunction"):
            pass
        with metering.running("WorkerFunction"):
            pass
    with metering.running("WorkerFunction"):
        pass
    assert metering.snapshot()["most_at_once"] == {"PlanFunction": 1, "WorkerFunction": 3}
    metering.reset()
    with metering.running("WorkerFunction"):
        pass
    assert metering.snapshot()["most_at_once"] == {"WorkerFunction": 1}
