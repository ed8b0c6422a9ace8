"""The process made the local cloud's: fake AWS credentials and settings in os.environ, and its memory returned.

Everything the functions, moto and boto3 read from os.environ is set here, and put back as found on stop, so
nothing of a real account (a profile, a shared config, an endpoint) can reach the local cloud and nothing of
the local cloud outlives it in the process.
"""

from __future__ import annotations

import ctypes
import os

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# moto keeps an S3 object's bytes in memory up to ~5 MB, so every batch's parts stayed in this process: its
# RSS grew with the batches it ran. Bodies over this size go to a temporary file instead (each holds an open
# descriptor, which is why small ones, such as manifests, stay in memory).
S3_MEMORY_BYTES = 64 * 1024

# glibc's mallopt parameter, and the size from which a buffer is always its own mapping (see below).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_buffers() -> None:
    """Make freed buffers of 1 MiB and more go back to the OS at once (glibc only; elsewhere nothing).

    On AWS every function is a process of its own; here all of them, moto and the API share one, in dozens
    of threads. glibc raises its mmap threshold to the largest buffer freed (up to 32 MiB), after which a
    4 MiB upload part or a whole output file read is carved from a per-thread arena that keeps the memory:
    measured at 50,000 lines, peak RSS 721 MiB with the default and 510 MiB with a fixed 1 MiB threshold.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


class FakeEnvironment:
    """os.environ as the local cloud needs it while it runs, and as it was once it stops."""

    def __init__(self) -> None:
        self._saved: dict[str, str] | None = None

    def apply(self) -> None:
        """Save os.environ, then set the fake account's credentials and region and shut out every real one."""
        self._saved = dict(os.environ)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(
            {
                **FAKE_CREDENTIALS,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                # No shared config may add a profile, region or endpoint of a real account.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                # There is no X-Ray daemon locally.
                "POWERTOOLS_TRACE_DISABLED": "true",
                "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(S3_MEMORY_BYTES),
            }
        )

    def restore(self) -> None:
        """Put os.environ back as `apply` found it, whatever was set since (idempotent)."""
        if self._saved is not None:
            os.environ.clear()
            os.environ.update(self._saved)
            self._saved = None
