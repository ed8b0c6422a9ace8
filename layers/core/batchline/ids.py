"""Object ids in OpenAI's formats."""

import functools
import hashlib
import itertools
import os
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


class _Sequence:
    """Unique ids without a random draw each: a 64-bit random prefix per process, then a counter.

    Unique across invocations and their retries (in this process the counter never repeats; another
    process, or a forked child, draws its own prefix). Not secret: only for ids minted per line.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()  # next() is atomic under the GIL: threads share it safely

    def next(self, digits: int) -> str:
        return f"{self._prefix}{next(self._counter):0{digits}x}"


@functools.cache  # made at first use, not at import
def _sequence() -> _Sequence:
    return _Sequence()


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def file_id() -> str:
    return f"file-{_token(24)}"


def request_id() -> str:
    """OpenAI's `x-request-id` form, for answers (of the API or of a line's upstream) that came with none."""
    return f"req_{secrets.token_hex(16)}"


def batch_id() -> str:
    return f"batch_{secrets.token_hex(16)}"


def derived_batch_id(*parts: str) -> str:
    """A batch id that is the same for the same parts: a repeated event makes no second batch."""
    return f"batch_{hashlib.sha256('\0'.join(parts).encode()).hexdigest()[:32]}"


def derived_file_id(*parts: str) -> str:
    """A file id that is the same for the same parts (a retried finalize registers the same file)."""
    return f"file-{hashlib.sha256('\0'.join(parts).encode()).hexdigest()[:24]}"


def job_id() -> str:
    return f"job-{secrets.token_hex(4)}"


def tenant_id() -> str:
    return f"tenant_{secrets.token_hex(8)}"


def api_key_id() -> str:
    return f"key_{secrets.token_hex(8)}"


def api_key_secret() -> str:
    return f"sk-bl-{_token(40)}"


def upload_id() -> str:
    return f"upload_{secrets.token_hex(12)}"


def part_id() -> str:
    return f"part_{secrets.token_hex(12)}"


def batch_request_id() -> str:
    """One per answered line: 24 hex digits, as before, from the sequence (16 of prefix, 8 of counter)."""
    return f"batch_req_{_sequence().next(8)}"


def derived_batch_request_id(*parts: str) -> str:
    """A request id that is the same for the same parts: a retried merge writes the same bytes."""
    return f"batch_req_{hashlib.sha256('\0'.join(parts).encode()).hexdigest()[:24]}"
