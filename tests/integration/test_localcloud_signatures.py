"""The local cloud's S3 checks presigned URLs and refuses anonymous requests, as S3 does (moto checks neither)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from botocore.config import Config

from localcloud import LocalCloud
from localcloud.signatures import presigned_problem

BUCKET = "signatures-test"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(serve_api=False, seed=False) as running:
        running.client("s3").create_bucket(Bucket=BUCKET)
        running.client("s3").put_object(Bucket=BUCKET, Key="tenant-a/file", Body=b"a's bytes")
        running.client("s3").put_object(Bucket=BUCKET, Key="tenant-b/file", Body=b"b's bytes")
        yield running


def presigned(cloud: LocalCloud, method: str, key: str, expires: int = 900) -> str:
    # SigV4, as the stack signs (batchline.data.objects.S3_CONFIG).
    s3 = cloud.client("s3", config=Config(signature_version="s3v4"))
    return str(s3.generate_presigned_url(method, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=expires))


def test_a_presigned_url_works_as_it_was_signed(cloud: LocalCloud) -> None:
    assert requests.get(presigned(cloud, "get_object", "tenant-a/file"), timeout=10).content == b"a's bytes"
    put = requests.put(presigned(cloud, "put_object", "tenant-a/new"), data=b"new", timeout=10)
    assert put.status_code == 200, put.text


def test_a_presigned_url_whose_path_was_changed_writes_nothing(cloud: LocalCloud) -> None:
    url = presigned(cloud, "put_object", "tenant-a/upload")
    changed = url.replace("/tenant-a/upload?", "/tenant-b/file?")
    answer = requests.put(changed, data=b"overwritten", timeout=10)
    assert answer.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in answer.text
    assert cloud.client("s3").get_object(Bucket=BUCKET, Key="tenant-b/file")["Body"].read() == b"b's bytes"


def test_a_presigned_url_whose_signature_was_changed_is_refused(cloud: LocalCloud) -> None:
    url = presigned(cloud, "get_object", "tenant-a/file")
    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    forged = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    answer = requests.get(forged, timeout=10)
    assert answer.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in answer.text


def test_an_unsigned_request_on_the_s3_port_is_refused(cloud: LocalCloud) -> None:
    for url in (f"{cloud.moto_endpoint}/{BUCKET}", f"{cloud.moto_endpoint}/{BUCKET}/tenant-a/file"):
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text, url


def test_a_sigv2_presigned_url_is_refused_as_a_bucket_made_since_2020_refuses_it(cloud: LocalCloud) -> None:
    url = str(
        cloud.client("s3").generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "tenant-a/file"})
    )
    assert "Signature=" in url and "X-Amz-Signature" not in url
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 400 and "<Code>InvalidRequest</Code>" in answer.text


def test_an_expired_presigned_url_is_refused(cloud: LocalCloud) -> None:
    url = urlsplit(presigned(cloud, "get_object", "tenant-a/file", expires=60))
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"{url.path}?{url.query}", "HTTP_HOST": url.netloc}
    assert presigned_problem(environ, {"testing": "testing"}, time.time()) is None
    assert presigned_problem(environ, {"testing": "testing"}, time.time() + 61) == (
        "AccessDenied",
        "Request has expired",
    )
