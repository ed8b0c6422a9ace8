"""Where moto behaves in ways AWS never does under concurrency or in its event plumbing, make it behave.

Serialized backends: moto's server answers each request in a thread of its own, but its DynamoDB and
S3 backends are plain dicts with no locking. A TransactWriteItems deep-copies every table it touches
(to roll back on failure) while other threads write to them ("dictionary changed size during
iteration", a 500 AWS never answers), and a failed transaction restores that copy over writes other
requests made meanwhile. Each of the two services therefore runs one request at a time, behind a lock
of its own. That is all the isolation AWS gives (every request is atomic), no more.

Transactions that copy nothing: moto's TransactWriteItems deep-copied every table it touched before its
first write, to put the copy back if any item failed: O(table) CPU and memory per transaction, which at
50,000 lines was most of the local cloud's CPU. Here a transaction journals instead: before it writes an
item it keeps that item's attributes (one item, not the table), and a cancelled transaction puts back
exactly those items, in place, and truncates the stream shards it wrote to. Everything else, other tables,
other items, and writes that waited on the lock, is never touched. The stream records a transaction makes
are delivered only once it commits: on AWS a cancelled transaction wrote nothing, so it streams nothing.

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

DynamoDB answers written as the JSON they already are: moto's results for the item operations are dicts in
DynamoDB's wire form (bytes aside), yet its model-driven serializer walks every attribute value through the
output shape, some hundred calls per attribute: reading 300 small items took 0.7 s of the local cloud's one
GIL, where AWS answers in milliseconds. Those answers are dumped as JSON directly (bytes in base64, as the
serializer writes them); every other answer, and every error, goes through moto's serializer as before.

Routing without a disk scan: moto's server finds the backend of every request under one global lock,
listing moto's package folder from disk and trying every service's URL pattern each time; under load
that lock is where most request threads wait. The answer depends on the host alone, so it is cached.

Events after the request: moto delivers an S3 notification (and, through SQS's or the stream's event
source mapping, runs the subscribed function) from inside the request that caused it, and for
PutObject before the object's metadata is stored. On AWS the event follows the stored object, and the
function it starts runs outside the request. So notifications and stream deliveries raised during a
request are held and delivered after it, once the object (and its metadata) is stored and the
service's lock is released, so a function they start can call the same service. What a stream
delivers, and TTL, are in localcloud.streams.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from localcloud import streams
from localcloud.patching import Patches

log = logging.getLogger(__name__)


class ServiceLock:
    """A re-entrant lock that counts the threads waiting on it (tests drive interleavings with it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._state = threading.Condition()
        self.waiting = 0

    def __enter__(self) -> ServiceLock:
        if not self._lock.acquire(blocking=False):
            with self._state:
                self.waiting += 1
                self._state.notify_all()
            try:
                self._lock.acquire()
            finally:
                with self._state:
                    self.waiting -= 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait_for_waiter(self, timeout: float) -> bool:
        """Block until some thread waits on the lock; False after `timeout` seconds without one."""
        with self._state:
            return self._state.wait_for(lambda: self.waiting > 0, timeout=timeout)


# A completed multipart upload is copied into its object, and an object sent, this much at a time.
COPY_BLOCK_BYTES = 1024 * 1024

DYNAMODB_LOCK = ServiceLock("dynamodb")
S3_LOCK = ServiceLock("s3")

# Deliveries held while the current thread is inside a request: callables run after it.
_held = threading.local()
# Set while moto's server (not the in-process mock) answers a request, and while it answers a GetObject.
_serving = threading.local()
_patches = Patches()


@contextmanager
def request(lock: ServiceLock) -> Iterator[None]:
    """One request to a serialized service: hold its events until it is done and the lock is free."""
    outer = getattr(_held, "deliveries", None)
    if outer is None:
        _held.deliveries = []
    try:
        with lock:
            yield
    finally:
        if outer is None:
            deliveries: list[Callable[[], None]] = _held.deliveries
            _held.deliveries = None
            for deliver in deliveries:
                try:
                    deliver()
                except Exception:  # delivery is asynchronous on AWS: it never fails the request
                    log.exception("delivering an event after the request failed")


def _hold(deliver: Callable[[], None]) -> bool:
    """Queue `deliver` after the current request; False outside a request (deliver now)."""
    deliveries = getattr(_held, "deliveries", None)
    if deliveries is None:
        return False
    deliveries.append(deliver)
    return True


_patch = _patches.patch


def _serialized(lock: ServiceLock) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        def serialized(*args: Any, **kwargs: Any) -> Any:
            with request(lock):
                return original(*args, **kwargs)

        return serialized

    return make


def _held_notification(original: Any) -> Any:
    @functools.wraps(original)
    def send_event(*args: Any, **kwargs: Any) -> None:
        if not _hold(lambda: original(*args, **kwargs)):
            original(*args, **kwargs)

    return send_event


def _held_stream_delivery(original: Any) -> Any:
    @functools.wraps(original)
    def send_dynamodb_items(self: Any, function_arn: str, items: list[Any], source: str) -> Any:
        # The shard starts a new list after a truthy answer, so this one is ours to deliver later.
        records = list(items)
        if not _hold(lambda: streams.deliver(self, function_arn, records, source)):
            streams.deliver(self, function_arn, records, source)
        return "delivered"

    return send_dynamodb_items


class _Journal:
    """What a transaction changed, so that cancelling it can put back exactly that."""

    def __init__(self) -> None:
        # (table name, hash, range) -> (table, the item object or None, a copy of its attributes)
        self.items: dict[tuple[str, Any, Any], tuple[Any, Any, Any]] = {}
        # table name -> (shard, its record list, the list's length) before the transaction's first write
        self.shards: dict[str, tuple[Any, list[Any], int]] = {}

    def before_write(self, table: Any, hash_value: Any, range_value: Any) -> None:
        key = (table.name, hash_value, range_value)
        if key not in self.items:
            item = table.get_item(hash_value, range_value)
            # UpdateItem changes the item in place: keep its attributes as they are now.
            self.items[key] = (table, item, None if item is None else copy.deepcopy(item.attrs))
        shard = table.stream_shard
        if shard is not None and table.name not in self.shards:
            self.shards[table.name] = (shard, shard.items, len(shard.items))

    def roll_back(self) -> None:
        for (_, hash_value, range_value), (table, item, attrs) in self.items.items():
            if item is not None:
                item.attrs = attrs
            if range_value is None:
                if item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
                continue
            bucket = table.items[hash_value]
            if item is None:
                bucket.pop(range_value, None)
                if not bucket:
                    del table.items[hash_value]
            else:
                bucket[range_value] = item
        for shard, records, length in self.shards.values():
            # The shard starts a new list after each delivery; the records before the transaction are in this one.
            del records[length:]
            shard.items = records


def _journaled_transact_write_items(original: Any) -> Any:
    """DynamoDBBackend.transact_write_items as moto has it, with a journal of items for its copies of tables."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        journal = _Journal()
        targets: set[tuple[str, str]] = set()
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        # Stream deliveries of the transaction's writes wait for its outcome.
        outer = getattr(_held, "deliveries", None)
        _held.deliveries = []
        committed = False
        try:
            for entry in transact_items:
                if len(entry) > 1:
                    raise TransactWriteSingleOpException
                original_item: dict[str, Any] | None = None
                try:
                    op_type, op = next(iter(entry.items()))
                    if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                        raise ValueError("Unsupported transaction operation")
                    table_name = op["TableName"]
                    condition = op.get("ConditionExpression")
                    names = op.get("ExpressionAttributeNames")
                    values = op.get("ExpressionAttributeValues")
                    if op_type == "Put":
                        table = self.get_table(table_name)
                        key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                        if table.range_key_attr is not None:
                            key[table.range_key_attr] = op["Item"][table.range_key_attr]
                    else:
                        key = op["Key"]
                    unique = (str(table_name), str(dict(sorted(key.items()))))
                    if unique in targets:
                        raise MultipleTransactionsException()
                    targets.add(unique)
                    current = self.get_item(table_name, key)
                    if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                            original_item = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=original_item)
                    if op_type != "ConditionCheck":
                        table = self.get_table(table_name)
                        journal.before_write(table, *self.get_keys_value(table, key))
                    if op_type == "Put":
                        self.put_item(
                            table_name, op["Item"], condition_expression=condition,
                            expression_attribute_names=names, expression_attribute_values=values,
                        )  # fmt: skip
                    elif op_type == "Delete":
                        self.delete_item(
                            table_name, key, condition_expression=condition,
                            expression_attribute_names=names, expression_attribute_values=values,
                        )  # fmt: skip
                    elif op_type == "Update":
                        self.update_item(
                            table_name, key, update_expression=op["UpdateExpression"],
                            condition_expression=condition, expression_attribute_names=names,
                            expression_attribute_values=values,
                        )  # fmt: skip
                    errors.append((None, None, None))
                except (MultipleTransactionsException, MockValidationException):
                    raise
                except ConditionalCheckFailed as exc:
                    errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
                except Exception as exc:  # noqa: BLE001  # as moto: any failure of an item is its cancellation reason
                    errors.append((type(exc).__name__, str(exc), original_item))
            if any(code is not None for code, _, _ in errors):
                raise TransactionCanceledException(errors)
            committed = True
        finally:
            mine: list[Callable[[], None]] = _held.deliveries
            _held.deliveries = outer
            if not committed:
                journal.roll_back()
            else:
                for deliver in mine:
                    if not _hold(deliver):
                        deliver()

    return transact_write_items


class _JoinedParts:
    """The bytes of a completed multipart upload, as its parts' buffers: copied into the new object in blocks.

    moto disposes of the upload (closing its parts' buffers) before it stores the new object, so the buffers
    are taken from the parts (each part gets an empty one to close) once every part has been checked.
    """

    def __init__(self, parts: list[Any]) -> None:
        self.size = sum(part.contentsize for part in parts)
        self.buffers = []
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
        from moto.s3.utils import HAS_CRT

        if self.algorithm == "CRC64NVME" and HAS_CRT:
            from awscrt import checksums

            self.value, self.width = checksums.crc64nvme(data, self.value), 8
            return
        if self.algorithm == "CRC32C":
            try:
                import crc32c  # type: ignore[import-not-found]

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
    import codecs

    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, MultipartChecksumBuilder
    from moto.utilities.utils import md5_hash

    @functools.wraps(original)
    def complete(self: Any, body: Any) -> tuple[Any, str, tuple[str, str, int] | None]:
        decode_hex = codecs.getdecoder("hex_codec")
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
            md5s.extend(decode_hex(part.etag.replace('"', ""))[0])
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
        if getattr(_serving, "get_object", False) and getattr(self._value_buffer, "_rolled", False):
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
        _serving.get_object = getattr(_serving, "server", False)
        try:
            return original(self)
        finally:
            _serving.get_object = False

    return get_object


def _apps_without_debug(original: Any) -> Any:
    """DomainDispatcherApplication.get_application: the Flask app of each service, out of debug mode.

    moto creates them in debug mode, where Flask's check of request.files closes the request into a
    class of its own (flask.debughelpers.attach_enctype_error_multidict): a reference cycle, so every
    request, and the body it read, lived on until the garbage collector's next full pass. Set as each
    app is looked up, since the server (and apps already made) may predate install().
    """

    @functools.wraps(original)
    def get_application(self: Any, environ: dict[str, Any]) -> Any:
        app = original(self, environ)
        if app.debug:
            app.debug = False
            app.config["PROPAGATE_EXCEPTIONS"] = True  # what debug mode gave: a moto error is not swallowed
        return app

    return get_application


def _body_in_one_read(original: Any) -> Any:
    """werkzeug's LimitedStream.readall, for a body of known length: one read into one bytes object.

    werkzeug reads 64 KiB blocks into a bytearray and copies that into bytes at the end, so each part
    a worker or Finalize PUTs (up to 8 MiB) was held twice while it arrived. A buffered socket file's
    read(n) fills one bytes object of n and waits for all of it, as the loop did.
    """

    @functools.wraps(original)
    def readall(self: Any) -> bytes:
        if self.is_exhausted or self._limit_is_max or not hasattr(self._stream, "read"):
            return bytes(original(self))
        remaining = self.limit - self._pos
        try:
            data: bytes = self._stream.read(remaining)
        except (OSError, ValueError) as exc:
            self.on_disconnect(error=exc)
            return b""
        self._pos += len(data)
        if len(data) < remaining:
            self.on_disconnect()  # the client went away before the body's end: werkzeug raises
        return data

    return readall


# The item operations, whose results are wire-form dicts of items (see DynamoResult in moto.dynamodb.responses).
_PLAIN_DYNAMODB_ACTIONS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "TransactGetItems"}
)


def _base64(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def _plain_dynamodb_answers(original: Any) -> Any:
    from moto.dynamodb.responses import DynamoResult

    @functools.wraps(original)
    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if not (isinstance(action_result, DynamoResult) and isinstance(result, dict)):
            return original(self, action_result)
        if self._get_action() not in _PLAIN_DYNAMODB_ACTIONS:
            return original(self, action_result)
        # The serializer leaves out members that are None; so does this.
        body = json.dumps({k: v for k, v in result.items() if v is not None}, default=_base64)
        return 200, {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}, body

    return serialized


def _cached_routing(original: Any) -> Any:
    cache: dict[str | None, Any] = {}

    @functools.wraps(original)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    return get_backend_for_host


def install() -> None:
    """Serialize moto's DynamoDB and S3, journal its transactions, deliver events after the request (idempotent)."""
    from moto.awslambda.models import LambdaBackend
    from moto.core.utils import convert_to_flask_response
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamRecord, Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.s3 import notifications
    from moto.s3.models import FakeKey, FakeMultipart
    from moto.s3.responses import S3Response
    from werkzeug.wsgi import LimitedStream

    with _patches.lock:
        _patch(DomainDispatcherApplication, "get_backend_for_host", _cached_routing)
        _patch(DynamoHandler, "call_action", _serialized(DYNAMODB_LOCK))
        _patch(DynamoHandler, "serialized", _plain_dynamodb_answers)
        _patch(DynamoDBBackend, "transact_write_items", _journaled_transact_write_items)
        for name in ("key_response", "bucket_response"):
            _patch(S3Response, name, _serialized(S3_LOCK))
        _patch(FakeMultipart, "complete", _complete_multipart)
        _patch(FakeKey, "value", _value_in_blocks)
        _patch(FakeKey, "etag", _etag_in_blocks)
        _patch(S3Response, "get_object", _streamed_get_object)
        _patch(convert_to_flask_response, "__call__", _serving_requests)
        _patch(LimitedStream, "readall", _body_in_one_read)
        _patch(DomainDispatcherApplication, "get_application", _apps_without_debug)
        _patch(LambdaBackend, "send_dynamodb_items", _held_stream_delivery)
        _patch(Table, "create_from_cloudformation_json", streams.table_from_cloudformation)
        _patch(StreamRecord, "__init__", streams.record_with_identity)
        # Every caller in moto.s3 looks the function up on the module at call time.
        _patch(notifications, "send_event", _held_notification)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
