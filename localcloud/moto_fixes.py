"""Where moto behaves in ways AWS never does under concurrency or in its event plumbing, make it behave.

Serialized backends: moto's server answers each request in a thread of its own, but its DynamoDB and
S3 backends are plain dicts with no locking. A TransactWriteItems deep-copies every table it touches
(to roll back on failure) while other threads write to them ("dictionary changed size during
iteration", a 500 AWS never answers), and a failed transaction restores that copy over writes other
requests made meanwhile. Each of the two services therefore runs one request at a time, behind a lock
of its own. That is all the isolation AWS gives (every request is atomic), no more.

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

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from localcloud import streams

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


DYNAMODB_LOCK = ServiceLock("dynamodb")
S3_LOCK = ServiceLock("s3")

# Deliveries held while the current thread is inside a request: callables run after it.
_held = threading.local()
_originals: dict[tuple[Any, str], Any] = {}
_install_lock = threading.Lock()


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


def _patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    if (owner, name) in _originals:
        return
    original = owner.__dict__[name]
    _originals[(owner, name)] = original
    setattr(owner, name, make(original))


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


def _cached_routing(original: Any) -> Any:
    cache: dict[str | None, Any] = {}

    @functools.wraps(original)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    return get_backend_for_host


def install() -> None:
    """Serialize moto's DynamoDB and S3 and deliver their events after the request (idempotent)."""
    from moto.awslambda.models import LambdaBackend
    from moto.dynamodb.models.table import StreamRecord, Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.s3 import notifications
    from moto.s3.responses import S3Response

    with _install_lock:
        _patch(DomainDispatcherApplication, "get_backend_for_host", _cached_routing)
        _patch(DynamoHandler, "call_action", _serialized(DYNAMODB_LOCK))
        for name in ("key_response", "bucket_response"):
            _patch(S3Response, name, _serialized(S3_LOCK))
        _patch(LambdaBackend, "send_dynamodb_items", _held_stream_delivery)
        _patch(Table, "create_from_cloudformation_json", streams.table_from_cloudformation)
        _patch(StreamRecord, "__init__", streams.record_with_identity)
        # Every caller in moto.s3 looks the function up on the module at call time.
        _patch(notifications, "send_event", _held_notification)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _install_lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()
