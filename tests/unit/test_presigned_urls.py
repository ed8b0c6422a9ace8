"""Presigned links name the bucket's regional endpoint, which works for a new bucket in any region.

The global endpoint (bucket.s3.amazonaws.com) answers a bucket outside us-east-1 with a redirect for
up to a day after it is created, which a presigned PUT or a download through the SDK does not survive.
Signing only: no request is sent.
"""

from __future__ import annotations

import pytest

from batchline.data import objects
from batchline.store import Store

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.fixture(autouse=True)
def _no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


@pytest.mark.parametrize("region", REGIONS)
def test_a_download_link_uses_the_regional_endpoint(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    url = Store("table", "batchline-bucket").objects.presign_get("files/f", expires_in=60, filename="f.jsonl")
    assert url.startswith(f"https://batchline-bucket.s3.{region}.amazonaws.com/files/f?")


@pytest.mark.parametrize("region", REGIONS)
def test_an_upload_link_uses_the_regional_endpoint(region: str) -> None:
    url = objects._presigner(region, None).generate_presigned_url(
        "put_object", Params={"Bucket": "batchline-bucket", "Key": "uploads/t/u/object"}, ExpiresIn=60
    )
    assert url.startswith(f"https://batchline-bucket.s3.{region}.amazonaws.com/uploads/t/u/object?")


def test_a_local_endpoint_keeps_path_style_links() -> None:
    url = objects._presigner("eu-west-1", "http://127.0.0.1:5000").generate_presigned_url(
        "get_object", Params={"Bucket": "batchline-bucket", "Key": "files/f"}, ExpiresIn=60
    )
    assert url.startswith("http://127.0.0.1:5000/batchline-bucket/files/f?")
