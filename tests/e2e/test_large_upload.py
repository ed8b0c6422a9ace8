"""A 200 MB file through the Uploads API on the local cloud, as the SDK sends it: 4 MiB parts, then complete.

Completion must not pass the file through one invocation (API Gateway gives it 30 s): each part is joined
to the chain of those before it as it comes, so completion in that order is a few calls whatever the size.
Counted from the local cloud's metering: the calls the api function makes while completing.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from openai import OpenAI

from localcloud import LocalCloud, metering

MiB = 1024 * 1024
SIZE = 200 * 1000 * 1000  # the Uploads API's largest file
PART = 4 * MiB  # the stack's MaxUploadBytes: the largest part API Gateway and Lambda carry


def lines(size: int) -> bytes:
    """`size` bytes of JSONL-looking text, not all alike (so no layer can shortcut them)."""
    rng = random.Random(200)
    block = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * rng.randrange(50, 500)) for i in range(4000))
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.timeout(600)
def test_a_200_mb_upload_completes_with_a_few_calls_and_the_same_bytes(cloud: LocalCloud) -> None:
    client = OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)
    data = lines(SIZE)
    upload = client.uploads.create(bytes=SIZE, filename="big.jsonl", mime_type="application/jsonl", purpose="batch")
    parts = [client.uploads.parts.create(upload.id, data=data[i : i + PART]).id for i in range(0, SIZE, PART)]
    before = metering.snapshot()

    done = client.uploads.complete(upload.id, part_ids=parts)

    calls = metering.difference(metering.snapshot(), before)["api_calls"].get("ApiFunction", {})
    s3 = calls.get("s3", {})
    assert done.status == "completed" and done.file is not None and done.file.bytes == SIZE
    # One server-side copy, and the staged parts listed and deleted: no byte read, however large the file.
    assert s3 == {"CopyObject": 1, "ListObjectsV2": 1, "DeleteObjects": 1}, calls
    got = hashlib.sha256(client.files.content(done.file.id).content).hexdigest()
    assert got == hashlib.sha256(data).hexdigest()
