"""Transient AWS faults, injected into one function's calls: throttling, TransactionConflict, 500s.

A fault is answered in place of the real service, as an HTTP response in the service's own protocol, at
botocore's `before-send` step of each attempt: so botocore's retries see it exactly as they would see AWS's
answer (a single throttle is retried away, as on AWS; a TransactionCanceledException is not retried by
botocore, as on AWS), and what survives the retries reaches the product code as the ClientError AWS causes.

Faults are named by the function whose calls they hit (its logical id, as `localcloud.iam` knows the caller),
the botocore service name and, optionally, the operation; each hits `times` calls, then is spent. The running
local cloud takes them over HTTP too (`POST /_localcloud/faults`, `DELETE /_localcloud/faults`), for e2e tests
that run it as a subprocess; nothing of this exists on AWS.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from localcloud import iam
from localcloud.patching import Patches

CONTROL_PATH = "/_localcloud/faults"


@dataclass
class Fault:
    """Answer `times` calls of `function` to `service` (`operation`, or any) with this error."""

    function: str
    service: str
    code: str
    operation: str | None = None
    status: int = 500
    times: int = 1
    message: str = "Injected by the local cloud"
    # Extra fields of the error body, e.g. CancellationReasons of a TransactionCanceledException.
    details: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    @classmethod
    def transaction_conflict(cls, function: str, *, times: int = 1) -> Fault:
        """DynamoDB's answer to a transaction that collided with another write of the same item."""
        return cls(
            function=function,
            service="dynamodb",
            operation="TransactWriteItems",
            code="TransactionCanceledException",
            status=400,
            times=times,
            message="Transaction cancelled, please refer cancellation reasons for specific reasons "
            "[TransactionConflict]",
            details={"CancellationReasons": [{"Code": "TransactionConflict", "Message": "Transaction is ongoing"}]},
        )

    @classmethod
    def throttling(cls, function: str, service: str, *, operation: str | None = None, times: int = 1) -> Fault:
        """The service's throttling error."""
        code = {"dynamodb": "ThrottlingException", "s3": "SlowDown"}.get(service, "ThrottlingException")
        return cls(function, service, code, operation=operation, status=503 if service == "s3" else 400, times=times)


_faults: list[Fault] = []
_lock = threading.Lock()
_patches = Patches()


def inject(fault: Fault) -> Fault:
    """Add a fault; it stays until it has hit `times` calls or `clear()`."""
    with _lock:
        _faults.append(fault)
    return fault


def clear() -> list[Fault]:
    """Remove every fault; answer them (with their hits) for inspection."""
    with _lock:
        removed = list(_faults)
        _faults.clear()
    return removed


@contextmanager
def injected(*faults: Fault) -> Iterator[list[Fault]]:
    """Faults for the duration of a block."""
    for fault in faults:
        inject(fault)
    try:
        yield list(faults)
    finally:
        with _lock:
            for fault in faults:
                if fault in _faults:
                    _faults.remove(fault)


def _take(function: str, service: str, operation: str) -> Fault | None:
    with _lock:
        for fault in _faults:
            if (
                fault.function == function
                and fault.service == service
                and fault.operation in (None, operation)
                and fault.hits < fault.times
            ):
                fault.hits += 1
                return fault
    return None


class _Body:
    """The raw stream botocore reads a response from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: Any) -> bytes:
        data, self._data = self._data, b""
        return data


def _response(fault: Fault, service: str, url: str) -> AWSResponse:
    headers: dict[str, str] = {"x-amzn-requestid": "localcloud-fault"}
    if service == "s3":
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
            f"<Message>{fault.message}</Message><RequestId>localcloud-fault</RequestId></Error>"
        ).encode()
        headers["Content-Type"] = "application/xml"
    else:
        body = json.dumps({"__type": fault.code, "message": fault.message, **fault.details}).encode()
        headers.update({"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": fault.code})
    return AWSResponse(url, fault.status, headers, _Body(body))


class _FaultEmitter:
    """A client's event emitter that answers `before-send` with the fault's response (so nothing is sent)."""

    def __init__(self, emitter: Any, response: AWSResponse) -> None:
        self._emitter = emitter
        self._response = response

    def emit(self, event_name: str, **kwargs: Any) -> list[tuple[Any, Any]]:
        if event_name.startswith("before-send."):
            return [(None, self._response)]
        return self._emitter.emit(event_name, **kwargs)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._emitter, name)


class _AnsweringEndpoint:
    """An endpoint whose emitter answers with a fault; everything else is the endpoint's own."""

    def __init__(self, endpoint: Any, emitter: _FaultEmitter) -> None:
        self._endpoint = endpoint
        self._event_emitter = emitter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._endpoint, name)


def _answering_faults(original: Any) -> Any:
    """Endpoint._do_get_response: a fault of the calling function is answered in place of the service."""

    @functools.wraps(original)
    def do_get_response(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
        # Called once per attempt, inside botocore's retry loop: a fault is retried like AWS's answer.
        principal = iam.current()
        service = operation_model.service_model.service_name
        fault = _take(principal.name, service, operation_model.name) if principal and _faults else None
        if fault is None:
            return original(self, request, operation_model, context)
        # Nothing is sent (nor given to an in-process stubber): the service never sees the request.
        answering = _AnsweringEndpoint(self, _FaultEmitter(self._event_emitter, _response(fault, service, request.url)))
        return original(answering, request, operation_model, context)

    return do_get_response


def install() -> None:
    """Answer injected faults for every client, made before or after (idempotent)."""
    import botocore.endpoint

    with _patches.lock:
        _patches.patch(botocore.endpoint.Endpoint, "_do_get_response", _answering_faults)


def uninstall() -> None:
    """Stop answering faults and forget them."""
    with _patches.lock:
        _patches.undo()
        clear()


class ControlRoutes:
    """Serves `/_localcloud/faults` beside an ASGI app: POST a fault (JSON of `Fault`), DELETE them all."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") != CONTROL_PATH:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":
            fields: Mapping[str, Any] = json.loads(body or b"{}")
            answer: Any = asdict(inject(Fault(**{k: v for k, v in fields.items() if k != "hits"})))
        elif scope["method"] == "DELETE":
            answer = [asdict(f) for f in clear()]
        else:
            answer = {"error": "POST a fault or DELETE them"}
        data = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
