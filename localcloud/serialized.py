"""One request at a time per service, and the events a request raises delivered after it.

Serialized backends: moto's server answers each request in a thread of its own, but its DynamoDB and
S3 backends are plain dicts with no locking. A TransactWriteItems deep-copies every table it touches
(to roll back on failure) while other threads write to them ("dictionary changed size during
iteration", a 500 AWS never answers), and a failed transaction restores that copy over writes other
requests made meanwhile. Each of the two services therefore runs one request at a time, behind a lock
of its own (`localcloud.dynamodb`, `localcloud.s3`). That is all the isolation AWS gives (every request
is atomic), no more.

Events after the request: moto delivers an S3 notification (and, through SQS's or the stream's event
source mapping, runs the subscribed function) from inside the request that caused it, and for
PutObject before the object's metadata is stored. On AWS the event follows the stored object, and the
function it starts runs outside the request. So notifications and stream deliveries raised during a
request are held here and delivered after it, once the service's lock is released, so a function they
start can call the same service.

Nothing here patches moto: the services' modules wrap their handlers in `request()` and hold their
deliveries with `hold()`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

Delivery = Callable[[], None]


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


class _Held(threading.local):
    """The deliveries held while the current thread is inside a request; None outside one."""

    deliveries: list[Delivery] | None = None


_held = _Held()


@contextmanager
def request(lock: ServiceLock) -> Iterator[None]:
    """One request to a serialized service: hold its events until it is done and the lock is free."""
    outer = _held.deliveries
    if outer is None:
        _held.deliveries = []
    try:
        with lock:
            yield
    finally:
        if outer is None:
            deliveries = _held.deliveries or []
            _held.deliveries = None
            for deliver in deliveries:
                try:
                    deliver()
                except Exception:  # delivery is asynchronous on AWS: it never fails the request
                    log.exception("delivering an event after the request failed")


def hold(deliver: Delivery) -> bool:
    """Queue `deliver` after the current request; False outside a request (deliver now)."""
    if _held.deliveries is None:
        return False
    _held.deliveries.append(deliver)
    return True


@contextmanager
def until_committed() -> Iterator[Callable[[], None]]:
    """Hold the block's deliveries apart; they follow the request only if the block calls the commit it is given.

    What a cancelled transaction raised is dropped with it: on AWS it wrote nothing, so nothing follows it.
    """
    outer = _held.deliveries
    _held.deliveries = []
    committed = False

    def commit() -> None:
        nonlocal committed
        committed = True

    try:
        yield commit
    finally:
        mine = _held.deliveries or []
        _held.deliveries = outer
        if committed:
            for deliver in mine:
                if not hold(deliver):
                    deliver()


def serialized(lock: ServiceLock) -> Callable[[Any], Any]:
    """For Patches.patch: a service's request handler, run as one request behind the service's lock."""

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
            with request(lock):
                return original(*args, **kwargs)

        return one_at_a_time

    return make
