"""moto's server made cheap per request: routing cached, apps out of debug mode, bodies read in one go.

Routing without a disk scan: moto's server finds the backend of every request under one global lock,
listing moto's package folder from disk and trying every service's URL pattern each time; under load
that lock is where most request threads wait. The answer depends on the host alone, so it is cached.
"""

from __future__ import annotations

import functools
from typing import Any

from localcloud.patching import Patches

_patches = Patches()


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


def _cached_routing(original: Any) -> Any:
    cache: dict[str | None, Any] = {}

    @functools.wraps(original)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    return get_backend_for_host


def install() -> None:
    """Cache routing, take apps out of debug mode, read bodies in one read (idempotent)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from werkzeug.wsgi import LimitedStream

    with _patches.lock:
        _patches.patch(DomainDispatcherApplication, "get_backend_for_host", _cached_routing)
        _patches.patch(DomainDispatcherApplication, "get_application", _apps_without_debug)
        _patches.patch(LimitedStream, "readall", _body_in_one_read)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
