"""Lambda's limits, which moto does not apply: 6 MB payloads, and the account's and functions' concurrency.

`LambdaFunction.invoke` is wrapped with Lambda's 6 MB request and response payloads and its concurrency
(an account limit and each function's ReservedConcurrentExecutions); see `ConcurrencyLimits`. A
reservation (PutFunctionConcurrency, or a function created with one, as CloudFormation creates it) is
refused as Lambda refuses it when it would leave the account less than 100 unreserved: moto refuses it only
when told a quota, and never for a function CloudFormation creates.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from localcloud.patching import Patches

# Lambda's synchronous invocation payload quota, request and response: 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Lambda's documented default account concurrency; what a brand-new account starts with (the local cloud's
# account unless told otherwise); and the part of any account Lambda never lets reservations take.
DEFAULT_ACCOUNT_CONCURRENCY = 1000
NEW_ACCOUNT_CONCURRENCY = 10
MIN_UNRESERVED_CONCURRENCY = 100
RESERVATION_REFUSED = (
    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
    f"below its minimum value of [{MIN_UNRESERVED_CONCURRENCY}]."
)


def _json_error(code: int, error_type: str, message: str) -> Exception:
    """An error moto's request handler answers with HTTP `code`, as Lambda's Invoke API does."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(error_type, message)
    error.code = code
    return error


class ConcurrencyLimits:
    """Lambda's concurrency: an account limit, shared by every function without a reservation.

    A function with ReservedConcurrentExecutions runs at most that many at once (0 disables it); the
    others share what the reservations leave of the account limit. A synchronous invocation beyond its
    pool fails with TooManyRequestsException (HTTP 429), which Step Functions names
    `Lambda.TooManyRequestsException`. Invocations by event sources and `Event` invocations are queued and
    retried by Lambda itself on AWS: here they run at once, and count as in flight.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.account_limit = DEFAULT_ACCOUNT_CONCURRENCY
        self.in_flight: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.injected: dict[str, int] = {}

    def reset(self, account_limit: int = DEFAULT_ACCOUNT_CONCURRENCY) -> None:
        """Forget what is in flight and counted, and set the account limit."""
        if account_limit < 1:
            raise ValueError("the account concurrency limit must be at least 1")
        with self._lock:
            self.account_limit = account_limit
            self.in_flight.clear()
            self.throttled.clear()
            self.injected.clear()

    def inject_throttles(self, name: str, count: int) -> None:
        """Refuse the next `count` synchronous invocations of `name` as if its pool were full (a fault)."""
        with self._lock:
            self.injected[name] = self.injected.get(name, 0) + count

    @contextmanager
    def hold(self, name: str, count: int) -> Iterator[None]:
        """Count `count` executions of `name` in flight for the block: another workload of the account."""
        with self._lock:
            self.in_flight[name] = self.in_flight.get(name, 0) + count
        try:
            yield
        finally:
            with self._lock:
                self.in_flight[name] -= count

    def allows(self, reservations: Mapping[str, int]) -> bool:
        """Whether the account can give these reservations and keep Lambda's unreserved minimum."""
        return self.account_limit - sum(reservations.values()) >= MIN_UNRESERVED_CONCURRENCY

    @contextmanager
    def slot(self, name: str, reservations: Mapping[str, int], throttle: bool) -> Iterator[None]:
        """Hold one concurrent execution of `name` for the block, or raise TooManyRequestsException."""
        with self._lock:
            own = reservations.get(name)
            if own is not None:
                full, reason = self.in_flight.get(name, 0) >= own, "ReservedFunctionConcurrentInvocationLimitExceeded"
            else:
                pool = self.account_limit - sum(reservations.values())
                shared = sum(n for fn, n in self.in_flight.items() if fn not in reservations)
                full, reason = shared >= pool, "ConcurrentInvocationLimitExceeded"
            if throttle and self.injected.get(name, 0) > 0:
                self.injected[name] -= 1
                full, reason = True, "injected"
            if full and throttle:
                self.throttled[name] = self.throttled.get(name, 0) + 1
                raise _json_error(429, "TooManyRequestsException", f"Rate Exceeded. ({reason})")
            self.in_flight[name] = self.in_flight.get(name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight[name] -= 1


limits = ConcurrencyLimits()
_patches = Patches()


def reservations_in(backend: Any) -> dict[str, int]:
    """ReservedConcurrentExecutions of a moto Lambda backend's functions, by name."""
    return {
        fn.function_name: int(fn.reserved_concurrency)
        for fn in backend.list_functions()
        if fn.reserved_concurrency is not None and str(fn.reserved_concurrency) != ""
    }


def _refuse_unless_allowed(backend: Any, name: str, reserved: Any) -> None:
    """Lambda's InvalidParameterValueException for a reservation the account cannot give."""
    from moto.awslambda.exceptions import InvalidParameterValueException

    # The function's own reservation, if it has one, is the one being replaced.
    if not limits.allows({**reservations_in(backend), name: int(reserved)}):
        raise InvalidParameterValueException(RESERVATION_REFUSED)


def _reservation_on_create(original: Any) -> Any:
    """LambdaBackend.create_function: CloudFormation's functions bring their reservation along."""

    @functools.wraps(original)
    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        reserved = spec.get("ReservedConcurrentExecutions")
        if reserved is not None and str(reserved) != "":
            _refuse_unless_allowed(self, spec["FunctionName"], reserved)
        return original(self, spec)

    return create_function


def _reservation_checked(original: Any) -> Any:
    """LambdaBackend.put_function_concurrency, with Lambda's unreserved minimum."""

    @functools.wraps(original)
    def put_function_concurrency(self: Any, function_name: str, reserved_concurrency: str) -> Any:
        _refuse_unless_allowed(self, self.get_function(function_name).function_name, reserved_concurrency)
        return original(self, function_name, reserved_concurrency)

    return put_function_concurrency


def _synchronous(request_headers: Any) -> bool:
    # moto's own event sources (SQS, S3, streams, EventBridge) invoke with no headers at all.
    if not request_headers:
        return False
    kind = request_headers.get("X-Amz-Invocation-Type") or request_headers.get("x-amz-invocation-type")
    return kind in (None, "RequestResponse")


def _limited_invoke(original: Any) -> Any:
    """LambdaFunction.invoke: Lambda's payload and concurrency limits around moto's."""
    from moto.awslambda.utils import get_backend

    @functools.wraps(original)
    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise _json_error(
                413,
                "RequestEntityTooLargeException",
                f"{len(raw)} byte payload is too large for the RequestResponse invocation type "
                f"({MAX_PAYLOAD_BYTES} bytes)",
            )
        synchronous = _synchronous(request_headers)
        reservations = reservations_in(get_backend(self.account_id, self.region))
        with limits.slot(self.function_name, reservations, throttle=synchronous):
            payload = original(self, body, request_headers, response_headers)
        size = len(payload.encode() if isinstance(payload, str) else payload)
        if synchronous and size > MAX_PAYLOAD_BYTES:
            response_headers["x-amz-function-error"] = "Unhandled"
            error = {
                "errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                f"({MAX_PAYLOAD_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
            payload = json.dumps(error).encode()
        return payload

    return invoke


def install() -> None:
    """Apply Lambda's payload and concurrency limits to moto's Lambda (idempotent)."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    with _patches.lock:
        _patches.patch(LambdaFunction, "invoke", _limited_invoke)
        _patches.patch(LambdaBackend, "create_function", _reservation_on_create)
        _patches.patch(LambdaBackend, "put_function_concurrency", _reservation_checked)


def uninstall() -> None:
    """Restore moto's own limits and forget what was counted."""
    with _patches.lock:
        _patches.undo()
        limits.reset()
