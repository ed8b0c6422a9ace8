"""The S3 primitive: every call the service makes to S3, for one bucket, and its one multipart writer.

Keeping them here keeps the bucket's API surface in one place: template.yaml grants each function the
S3 actions these methods use, and layout.ACCESS says which prefixes it uses them on.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError

from batchline.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

# SigV4 for presigned links: what S3 requires in every region, and what carries X-Amz-Expires.
# Virtual-hosted on the regional endpoint: botocore presigns for the global s3.amazonaws.com
# otherwise, which redirects for up to a day for a new bucket outside us-east-1. (A custom
# endpoint given by IP, as the local cloud's, keeps path-style addressing.)
# The arguments of botocore's Config, which is built with the client (see _client).
S3_CONFIG: dict[str, Any] = {
    "signature_version": "s3v4",
    "s3": {"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
}
# S3's limit on the keys of one DeleteObjects request.
DELETE_BATCH = 1000
# What a GET's body raises when its stream breaks mid-way (botocore wraps urllib3's errors in these:
# ResponseStreamingError, ReadTimeoutError, ConnectionClosedError, and a body shorter than its length).
STREAM_DROPS = (HTTPClientError, IncompleteReadError)
# Drops in a row, with no byte read between them, before a ranged read gives up.
STREAM_DROPS_IN_A_ROW = 3


def body_chunks(body: Any, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """A GET's streaming body, a chunk at a time; closed once read, or once the reader stops."""
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


class Changed(Exception):
    """An If-Match failed: the object was written again since its ETag was read."""


def _reraise_changed(exc: ClientError) -> None:
    if exc.response["Error"]["Code"] in ("PreconditionFailed", "412"):
        raise Changed(str(exc)) from exc


def _client(**kwargs: Any) -> Any:
    """An S3 client with S3_CONFIG."""
    # Deferred: boto3 and botocore's config (which loads urllib3) are 100 ms of cold start (see data.conditions).
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(**S3_CONFIG), **kwargs)


@lru_cache(maxsize=8)
def _presigner(region: str | None, endpoint_url: str | None) -> Any:
    # SigV4 signs Content-Length, so S3 itself refuses a PUT of another size (complete checks it too).
    return _client(region_name=region, endpoint_url=endpoint_url)


class Objects:
    """The objects of one bucket; the client is created on first use."""

    def __init__(self, bucket: str, *, s3: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3

    @cached_property
    def client(self) -> Any:
        return self._s3 or _client()

    def in_bucket(self, bucket: str) -> Objects:
        """The objects of another bucket through the same client (an S3 event names its bucket)."""
        return Objects(bucket, s3=self.client)

    def _source(self, key: str, version_id: str | None) -> dict[str, str]:
        source = {"Bucket": self.bucket, "Key": key}
        if version_id:
            source["VersionId"] = version_id
        return source

    # ----------------------------------------------------------------------------------- reading

    def head(self, key: str, *, version_id: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.head_object(**self._source(key, version_id))
        return answer

    def open(self, key: str, *, version_id: str | None = None) -> Any:
        """A streaming body of the whole object."""
        return self.client.get_object(**self._source(key, version_id))["Body"]

    def open_sized(self, key: str) -> tuple[Any, int]:
        """A streaming body of the whole object and its size as S3 answers it, known before a byte is read."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key)
        return answer["Body"], int(answer["ContentLength"])

    def stream(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time; the GET is made when the first chunk is asked for."""
        yield from body_chunks(self.client.get_object(Bucket=self.bucket, Key=key)["Body"], chunk_size)

    def read_range(self, key: str, start: int, end: int, *, if_match: str | None = None) -> Any:
        """A streaming body of bytes [start, end); with `if_match`, Changed unless the ETag still is that."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
        if if_match is not None:
            params["IfMatch"] = if_match
        try:
            return self.client.get_object(**params)["Body"]
        except ClientError as exc:
            _reraise_changed(exc)
            raise

    def read_ranges(
        self, key: str, start: int, end: int, size: Callable[[], int], *, block: int = 256 * 1024
    ) -> Generator[bytes]:
        """Bytes [start, end) in ranged GETs of `size()` bytes each, asked anew for every GET.

        No stream is held longer than its range takes to read, and one that drops mid-way is read again
        from the byte it reached; only one that keeps dropping without progress is the reader's error.
        """
        position, drops = start, 0
        while position < end:
            stop = min(end, position + max(1, size()))
            body = self.read_range(key, position, stop)
            try:
                for data in body.iter_chunks(block):
                    position += len(data)
                    drops = 0
                    yield data
            except STREAM_DROPS:
                drops += 1
                if drops > STREAM_DROPS_IN_A_ROW:
                    raise
                logger.warning("Object stream dropped; reading on from its byte", extra={"key": key, "byte": position})
            finally:
                body.close()

    def list_prefix(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under a prefix (Key, Size, ETag, ...), across the listing's pages."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def first(self, prefix: str) -> dict[str, Any] | None:
        """The first object under a prefix, from one listing request; None when there is none.

        A listing, not a HEAD: S3 answers a HEAD of a missing key with 403 to a role that may list only
        the prefix, which cannot be told from a real denial; the listing says "absent" plainly.
        """
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1).get("Contents", [])
        return listed[0] if listed else None

    # ----------------------------------------------------------------------------------- writing

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def upload(self, key: str, body: IO[bytes], *, content_type: str = "application/octet-stream") -> None:
        """Stream a file-like object to S3 (multipart above 8 MB, never whole in memory)."""
        self.client.upload_fileobj(body, self.bucket, key, ExtraArgs={"ContentType": content_type})

    def copy(
        self,
        source_key: str,
        key: str,
        *,
        source_bucket: str | None = None,
        source_version: str | None = None,
        if_match: str | None = None,
        content_type: str | None = None,
    ) -> None:
        """A server-side copy into this bucket; `content_type` replaces the source's metadata."""
        source = {"Bucket": source_bucket or self.bucket, "Key": source_key}
        if source_version:
            source["VersionId"] = source_version
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "CopySource": source}
        if if_match is not None:
            params["CopySourceIfMatch"] = if_match
        if content_type is not None:
            params |= {"ContentType": content_type, "MetadataDirective": "REPLACE"}
        try:
            self.client.copy_object(**params)
        except ClientError as exc:
            _reraise_changed(exc)
            raise

    def writer(self, key: str, *, content_type: str = "application/jsonl") -> Writer:
        return Writer(self.client, self.bucket, key, content_type=content_type)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_quietly(self, keys: list[str]) -> None:
        """Best effort, for cleanup after a state change: a leftover object costs storage, not correctness."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except (BotoCoreError, ClientError):
                logger.warning("Could not delete staged objects", extra={"keys": batch[:10]}, exc_info=True)

    # ------------------------------------------------------------------------------------ links

    def presign_get(self, key: str, *, expires_in: int, filename: str) -> str:
        """A URL that downloads the object for `expires_in` seconds, for bodies too large to relay."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": "application/octet-stream",
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_in,
        )
        return url

    def presign_put(self, key: str, *, content_length: int, expires_in: int) -> str:
        """A URL that PUTs exactly `content_length` bytes to the key for `expires_in` seconds."""
        url: str = _presigner(self.client.meta.region_name, self.client.meta.endpoint_url).generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentLength": content_length},
            ExpiresIn=expires_in,
        )
        return url


class Writer:
    """Writes an S3 object from blocks and server-side copies: one put when small, a multipart upload when not.

    Memory holds at most one part (S3 needs every part but the last to be at least 5 MiB); a copied
    range is a part S3 writes itself, so those bytes never pass through the function.
    """

    PART_BYTES = 8 * 1024 * 1024

    def __init__(self, s3: Any, bucket: str, key: str, *, content_type: str) -> None:
        self._s3, self._bucket, self.key, self._content_type = s3, bucket, key, content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0

    @property
    def held(self) -> int:
        """Bytes written but not yet sent as a part."""
        return len(self._buffer)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self._buffer += data
        if len(self._buffer) >= self.PART_BYTES:
            self.flush()

    def _multipart(self) -> str:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type
            )["UploadId"]
        return self._upload_id

    def flush(self) -> None:
        """Send what is held as the next part (it must be at least 5 MiB unless it is the last)."""
        # The buffer itself, not a copy of it; a new one follows (botocore may still hold a view of it).
        self._send_part(self._buffer)
        self._buffer = bytearray()

    def _send_part(self, data: bytes | bytearray) -> None:
        upload_id = self._multipart()
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def copy_part(self, source_key: str, start: int, end: int, *, if_match: str | None = None) -> None:
        """S3 copies bytes [start, end) of an object of this bucket as the next part; Changed if If-Match fails."""
        if self._buffer:
            self.flush()  # the held bytes come first
        upload_id = self._multipart()
        number = len(self._parts) + 1
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self.key,
            "UploadId": upload_id,
            "PartNumber": number,
            "CopySource": {"Bucket": self._bucket, "Key": source_key},
            "CopySourceRange": f"bytes={start}-{end - 1}",
        }
        if if_match is not None:
            params["CopySourceIfMatch"] = if_match
        try:
            answer = self._s3.upload_part_copy(**params)
        except ClientError as exc:
            _reraise_changed(exc)
            raise
        self._parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
        self.size += end - start

    def close(self) -> int:
        """Finish the object; its size in bytes. Nothing written is no object at all (none to delete later)."""
        if self._upload_id is None:
            if not self._buffer:
                return 0
            self._s3.put_object(
                Bucket=self._bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self._content_type
            )
        else:
            if self._buffer:
                self.flush()
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buffer.clear()
        return self.size

    def abort(self) -> None:
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None
