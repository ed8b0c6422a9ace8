"""S3 objects moved in blocks, never whole: moto's server held up to three copies of an object at once.

Multipart completion without joining in memory: moto joined the parts into one buffer, joined them again
for the default full-object checksum (CRC64NVME) and copied both once more: three copies of the object at
once, the local cloud's peak memory when Finalize completed a 75 MB output file. Here the checksum is
computed a block at a time and the parts are copied into the new object one at a time.

Objects read and stored in blocks: moto's server answered every GET, ranged ones too, with the whole
object read into memory (and a range with a copy of its slice besides), so each worker's ranged read of
its chunk held the whole input, and a client's download the whole output; storing an object took it
into memory again before moving it to the object's file, and its ETag read it back in 16 MiB blocks.
Here the server sends an object kept in a file from that file, a block at a time (from a descriptor of
its own, so an object overwritten meanwhile is sent as it was, as S3 does), a large value goes straight
to its file, and the ETag reads it in blocks. Objects held in memory (small ones) are sent as moto sends
them. moto's in-process mock (no server) still answers bytes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from localcloud.patching import Patches

# A completed multipart upload is copied into its object, and an object sent, this much at a time.
COPY_BLOCK_BYTES = 1024 * 1024


class _Serving(threading.local):
    """Set while moto's server (not the in-process mock) answers a request, and while it answers a GetObject."""

    server = False
    get_object = False


_serving = _Serving()
_patches = Patches()


class _JoinedParts:
    """The bytes of a completed multipart upload, as its parts' buffers: copied into the new object in blocks.

    moto disposes of the upload (closing its parts' buffers) before it stores the new object, so the buffers
    are taken from the parts (each part gets an empty one to close) once every part has been checked.
    """

    def __init__(self, parts: list[Any]) -> None:
        self.size: int = sum(part.contentsize for part in parts)
        self.buffers: list[Any] = []
        for part in parts:
            with part.lock:
                self.buffers.append(part._value_buffer)
                # Closed by moto, when it disposes of the part.
                part._value_buffer = tempfile.SpooledTemporaryFile(part._max_buffer_size)  # noqa: SIM115

    def __len__(self) -> int:
        return self.size

    def write_to(self, target: Any) -> None:
        for buffer in self.buffers:
            buffer.seek(0)
            shutil.copyfileobj(buffer, target, COPY_BLOCK_BYTES)
            buffer.close()


class _FullObjectChecksum:
    """A FULL_OBJECT checksum (the CRCs) computed part by part, as moto.s3.utils.compute_checksum computes it whole."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.value = 0
        self.width = 4

    def add(self, data: bytes) -> None:
        from moto.s3.utils import HAS_CRT  # type: ignore[attr-defined]  # imported there, not re-exported

        if self.algorithm == "CRC64NVME" and HAS_CRT:
            from awscrt import checksums

            self.value, self.width = checksums.crc64nvme(data, self.value), 8
            return
        if self.algorithm == "CRC32C":
            try:
                import crc32c

                self.value = crc32c.crc32c(data, self.value)
                return
            except ImportError:  # moto falls back to CRC32 too
                pass
        self.value = binascii.crc32(data, self.value)

    def build(self) -> str:
        return base64.b64encode(self.value.to_bytes(self.width, "big")).decode()


def _blocks(key: Any) -> Iterator[bytes]:
    """An object's bytes, COPY_BLOCK_BYTES at a time."""
    with key.lock:
        key._value_buffer.seek(0)
        while block := key._value_buffer.read(COPY_BLOCK_BYTES):
            yield block


def _complete_multipart(original: Any) -> Any:
    """FakeMultipart.complete as moto has it, without joining the parts in memory (see the module docstring)."""
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.models import (  # type: ignore[attr-defined]  # imported there, not re-exported
        S3_UPLOAD_PART_MIN_SIZE,
        MultipartChecksumBuilder,
    )
    from moto.utilities.utils import md5_hash

    @functools.wraps(original)
    def complete(self: Any, body: Any) -> tuple[Any, str, tuple[str, str, int] | None]:
        md5s = bytearray()
        composite = MultipartChecksumBuilder(
            self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
        )
        full = _FullObjectChecksum(composite.checksum_algorithm)
        parts: list[Any] = []
        for number, etag in body:
            part = self.parts.get(number)
            if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
                raise InvalidPart()
            if parts and parts[-1].contentsize < S3_UPLOAD_PART_MIN_SIZE:
                raise EntityTooSmall()
            md5s.extend(binascii.a2b_hex(part.etag.replace('"', "")))
            if composite.checksum_type == "COMPOSITE":
                composite.addPart(part.value)
            else:
                for block in _blocks(part):
                    full.add(block)
            parts.append(part)
        if not parts:
            raise MalformedXML
        full_etag = md5_hash()
        full_etag.update(bytes(md5s))
        if composite.checksum_type == "COMPOSITE":
            checksum = composite.build()
        else:
            checksum = (composite.checksum_type, full.build(), 1)
        return _JoinedParts(parts), f"{full_etag.hexdigest()}-{len(parts)}", checksum

    return complete


class _Descriptor:
    """A descriptor of its own on an object's file: closed once no body reads it any more."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        weakref.finalize(self, os.close, fd)


class _ObjectBody:
    """Bytes [start, stop) of an object's file, as moto's server sends them: a block at a time.

    moto sizes a GET's answer with len() and cuts its range with a slice; werkzeug iterates it.
    """

    def __init__(self, file: _Descriptor, start: int, stop: int) -> None:
        self.file, self.start, self.stop = file, start, stop

    @classmethod
    def of(cls, key: Any) -> _ObjectBody:
        with key.lock:
            # What was written through the file's buffer (the last bytes of joined parts) is read from disk.
            key._value_buffer.flush()
            return cls(_Descriptor(os.dup(key._value_buffer.fileno())), 0, key.contentsize)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice) -> _ObjectBody:
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("an object's bytes are cut in one step")
        return _ObjectBody(self.file, self.start + start, self.start + max(start, stop))

    def __iter__(self) -> Iterator[bytes]:
        position = self.start
        while position < self.stop:
            block = os.pread(self.file.fd, min(COPY_BLOCK_BYTES, self.stop - position), position)
            if not block:
                return
            position += len(block)
            yield block


def _value_in_blocks(original: Any) -> Any:
    """FakeKey.value: its setter also takes _JoinedParts, and stores large bytes straight into their file;
    inside the server's GetObject, an object kept in a file is answered as an _ObjectBody."""

    def get_value(self: Any) -> Any:
        if _serving.get_object and getattr(self._value_buffer, "_rolled", False):
            return _ObjectBody.of(self)
        return original.fget(self)

    def set_value(self: Any, new_value: Any) -> None:
        if isinstance(new_value, _JoinedParts):
            self._value_buffer.seek(0)
            self._value_buffer.truncate()
            new_value.write_to(self._value_buffer)
            self.contentsize = new_value.size
            return
        if isinstance(new_value, bytes | bytearray) and len(new_value) > self._max_buffer_size:
            # SpooledTemporaryFile writes into memory first and only then moves it all to its file.
            self._value_buffer.seek(0)
            self._value_buffer.truncate()
            self._value_buffer.rollover()
            self._value_buffer.write(new_value)
            self.contentsize = len(new_value)
            return
        original.fset(self, new_value)

    return property(get_value, set_value)


def _etag_in_blocks(original: Any) -> Any:
    """FakeKey.etag, reading the object COPY_BLOCK_BYTES at a time rather than 16 MiB."""
    from moto.utilities.utils import md5_hash

    def etag(self: Any) -> str:
        if self._etag is None:
            digest = md5_hash()
            block = bytearray(COPY_BLOCK_BYTES)
            view = memoryview(block)
            self._value_buffer.seek(0)
            while size := self._value_buffer.readinto(block):
                digest.update(view[:size])
            self._etag = digest.hexdigest()
        return f'"{self._etag}"'

    return property(etag)


def _serving_requests(original: Any) -> Any:
    """moto's server's request handler: what it answers goes to a socket, which can take it in blocks."""

    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        _serving.server = True
        try:
            return original(self, *args, **kwargs)
        finally:
            _serving.server = False

    return call


def _streamed_get_object(original: Any) -> Any:
    @functools.wraps(original)
    def get_object(self: Any) -> Any:
        _serving.get_object = _serving.server
        try:
            return original(self)
        finally:
            _serving.get_object = False

    return get_object


def install() -> None:
    """Complete multipart uploads, store objects and send them in blocks (idempotent)."""
    from moto.core.utils import convert_to_flask_response
    from moto.s3.models import FakeKey, FakeMultipart
    from moto.s3.responses import S3Response

    with _patches.lock:
        _patches.patch(FakeMultipart, "complete", _complete_multipart)
        _patches.patch(FakeKey, "value", _value_in_blocks)
        _patches.patch(FakeKey, "etag", _etag_in_blocks)
        _patches.patch(S3Response, "get_object", _streamed_get_object)
        _patches.patch(convert_to_flask_response, "__call__", _serving_requests)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
