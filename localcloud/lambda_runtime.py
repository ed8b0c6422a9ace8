"""One invocation of a function, run in the calling thread as Lambda's Python runtime runs it.

The handler gets Lambda's event and context, runs as its role (localcloud.iam) and is metered
(localcloud.metering); what it raises is answered as the runtime's error body, with Lambda's log lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from localcloud import iam, metering
from localcloud.lambda_code import HandlerError, LocalFunction, apply_environment, load_handler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvocationResult:
    """What moto expects back from `_invoke_lambda`."""

    payload: str
    errored: bool
    logs: str


class LambdaContext:
    """The context object the Python runtime passes to a handler."""

    def __init__(self, function: LocalFunction, request_id: str) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"localcloud/[$LATEST]{request_id.replace('-', '')}"
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    @classmethod
    def called_directly(
        cls, name: str, *, request_id: str = "req-1", timeout: int = 60, memory_size: int = 128
    ) -> LambdaContext:
        """The context for a handler a test calls itself, outside a deployed stack."""
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        function = LocalFunction(name, name, arn, "app.lambda_handler", None, timeout=timeout, memory_size=memory_size)
        return cls(function, request_id)


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """Lambda's error body for an exception; Step Functions names the error after `errorType`."""
    error_type = exc.error_type if isinstance(exc, HandlerError) else type(exc).__name__
    return {
        "errorMessage": str(exc),
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


@contextmanager
def thread_event_loop() -> Iterator[None]:
    """An event loop set for this thread while a handler runs.

    Lambda's runtime imports a handler and calls it on one thread, so a loop a module sets at import
    (Mangum does) is current at every call. Here modules are imported once, in one thread, and called
    in moto's request threads: each call gets a current loop of its own, as the runtime's thread has.
    """
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        pass
    else:
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def invoke(function: LocalFunction, event: Any, request_id: str | None = None) -> InvocationResult:
    """Run one invocation of `function` in this thread, as the Lambda Python runtime would."""
    request_id = request_id or str(uuid.uuid4())
    if isinstance(event, str | bytes):
        # moto hands over the raw body when the request had none ("{}").
        event = json.loads(event or "{}")
    started = time.monotonic()
    errored = False
    try:
        handler = load_handler(function)
        apply_environment(function.environment)
        with metering.running(function.logical_id), iam.acting_as(function.principal), thread_event_loop():
            result = handler(event, LambdaContext(function, request_id))
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise HandlerError(
                "Runtime.MarshalError", f"Unable to marshal response: {exc} is not JSON serializable"
            ) from exc
    except Exception as exc:
        errored = True
        payload = json.dumps(error_payload(exc, request_id))
        log.info("%s raised %s: %s", function.name, type(exc).__name__, exc, exc_info=exc)
    elapsed = time.monotonic() - started
    metering.invoked(function.logical_id, function.memory_size, elapsed)
    elapsed_ms = elapsed * 1000
    if elapsed_ms > function.timeout * 1000:
        log.warning("%s ran %.0f ms, beyond its %s s Timeout", function.name, elapsed_ms, function.timeout)
    logs = "\n".join(
        [
            f"START RequestId: {request_id} Version: $LATEST",
            *([f"ERROR {payload}"] if errored else []),
            f"END RequestId: {request_id}",
            f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\tMemory Size: {function.memory_size} MB",
        ]
    )
    return InvocationResult(payload=payload, errored=errored, logs=logs)
