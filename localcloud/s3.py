"""S3's atomicity and the order of its events, which moto's backend lacks.

Each request is atomic on AWS; moto's server runs requests concurrently over plain dicts, so here every
request of the service runs behind S3_LOCK (see localcloud.serialized). moto sends an object's
notification from inside the PutObject that stored it, before the object's metadata is stored; on AWS
the event follows the stored object. So notifications are held until the request is done and the lock
is free, which lets a function they start read the object, metadata and all.
"""

from __future__ import annotations

import functools
from typing import Any

from localcloud.patching import Patches
from localcloud.serialized import ServiceLock, hold, serialized

S3_LOCK = ServiceLock("s3")

_patches = Patches()


def _held_notification(original: Any) -> Any:
    @functools.wraps(original)
    def send_event(*args: Any, **kwargs: Any) -> None:
        if not hold(lambda: original(*args, **kwargs)):
            original(*args, **kwargs)

    return send_event


def install() -> None:
    """Serialize moto's S3 and send its notifications after the request (idempotent)."""
    from moto.s3 import notifications
    from moto.s3.responses import S3Response

    with _patches.lock:
        for name in ("key_response", "bucket_response"):
            _patches.patch(S3Response, name, serialized(S3_LOCK))
        # Every caller in moto.s3 looks the function up on the module at call time.
        _patches.patch(notifications, "send_event", _held_notification)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
