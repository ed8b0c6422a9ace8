"""A file whose record DynamoDB's TTL removes loses its bytes: the sweeper gets the event AWS sends.

TTL is run with an injected clock (LocalCloud.expire_ttl), not waited for. The stream's mapping
filters on what only a TTL removal carries (userIdentity of the DynamoDB service), so ordinary
writes and a caller's own delete never invoke the sweeper.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from openai import NotFoundError, OpenAI

from localcloud import LocalCloud


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> OpenAI:
    return OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)


def sweeper_invocations(cloud: LocalCloud) -> int:
    name = cloud.stack.function("SweeperFunction").name
    logs = cloud.client("logs")
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern="START")["events"]
    except ClientError:
        return 0
    return sum(event["message"].count("START RequestId") for event in events)


def test_a_file_removed_by_ttl_has_its_bytes_deleted_and_only_then_is_the_sweeper_invoked(
    cloud: LocalCloud, client: OpenAI
) -> None:
    s3 = cloud.client("s3")
    bucket = cloud.stack.physical_id("FilesBucket")
    before = sweeper_invocations(cloud)
    expiring = client.files.create(
        file=("expiring.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    kept = client.files.create(file=("kept.jsonl", b"{}\n"), purpose="batch")
    deleted = client.files.create(
        file=("deleted.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    client.files.delete(deleted.id)
    assert sweeper_invocations(cloud) == before  # writes and a caller's delete are filtered out
    assert expiring.expires_at is not None

    # A second early: other items may expire (the API's request-rate windows live seconds), not this file,
    # and no removal but a file's reaches the sweeper.
    cloud.expire_ttl(now=expiring.expires_at - 1)
    assert client.files.retrieve(expiring.id).id == expiring.id
    assert sweeper_invocations(cloud) == before
    assert cloud.expire_ttl(now=expiring.expires_at + 1) >= 1

    assert sweeper_invocations(cloud) == before + 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="files/").get("Contents", [])]
    assert not [key for key in keys if expiring.id in key]
    assert [key for key in keys if kept.id in key]
    with pytest.raises(NotFoundError):
        client.files.retrieve(expiring.id)
    assert client.files.retrieve(kept.id).id == kept.id
