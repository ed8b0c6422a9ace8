"""Object ids in OpenAI's formats."""

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


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
    return f"batch_req_{secrets.token_hex(12)}"


def derived_batch_request_id(*parts: str) -> str:
    """A request id that is the same for the same parts: a retried merge writes the same bytes."""
    return f"batch_req_{hashlib.sha256('\0'.join(parts).encode()).hexdigest()[:24]}"
