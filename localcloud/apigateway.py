"""API Gateway's HTTP API limits in front of the app uvicorn serves, answered as API Gateway answers them.

On AWS the api function sits behind an HTTP API, which refuses a request body over 10 MB with 413
`{"message":"Request Entity Too Large"}` before any Lambda runs, and answers 503
`{"message":"Service Unavailable"}` when the integration has not answered within 30 seconds (the
function may still be running). The Lambda proxy integration buffers both ways: the function gets the
whole body and API Gateway sends the whole response, which is what this wrapper does too.

The stage's default route throttle (the template's ApiThrottleRate and ApiThrottleBurst) is a token
bucket shared by every client: past it API Gateway answers 429 `{"message":"Too Many Requests"}` itself.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from localcloud import iam, metering
from localcloud.intrinsics import Stack

if TYPE_CHECKING:
    from localcloud.lambdas import LocalFunction

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
MAX_BODY_BYTES = 10 * 1024 * 1024
# "Total combined size of request line and header values": 10240 bytes, not adjustable. The quota page does
# not say what API Gateway answers past it; this answers HTTP's own status for it, 431.
MAX_HEADER_BYTES = 10240
INTEGRATION_TIMEOUT_SECONDS = 30.0

TOO_LARGE = (413, {"message": "Request Entity Too Large"})
TIMED_OUT = (503, {"message": "Service Unavailable"})
THROTTLED = (429, {"message": "Too Many Requests"})
HEADERS_TOO_LARGE = (431, {"message": "Request Header Fields Too Large"})


def header_bytes(scope: Scope) -> int:
    """The request line and the header values, as API Gateway counts them against MAX_HEADER_BYTES."""
    target = scope.get("raw_path") or scope.get("path", "").encode()
    query = scope.get("query_string") or b""
    line = len(scope.get("method", "")) + 1 + len(target) + (len(query) + 1 if query else 0) + len(" HTTP/1.1")
    return line + sum(len(value) for _, value in scope.get("headers") or [])


class TokenBucket:
    """API Gateway's throttle: `rate` tokens a second fill a bucket of `burst`; each request takes one."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


def stage_throttle(template: Mapping[str, Any], parameters: Mapping[str, str]) -> TokenBucket | None:
    """The bucket of the template's HTTP API's default route settings (a Ref is a parameter's value); None
    when it sets none (API Gateway then applies only the account's limits, which no test here reaches)."""
    stack = Stack(template, parameters=parameters)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::HttpApi":
            settings = stack.resolve(resource.get("Properties", {}).get("DefaultRouteSettings", {}))
            if "ThrottlingRateLimit" in settings and "ThrottlingBurstLimit" in settings:
                return TokenBucket(float(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"]))
    return None


class _TooLarge(Exception):
    pass


class ApiGatewayLimits:
    """ASGI middleware: the HTTP API's stage throttle, header and payload limits and integration timeout."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        throttle: TokenBucket | None = None,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.integration_timeout = integration_timeout
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.throttle is not None and not self.throttle.take():
            await _answer(send, *THROTTLED)
            return
        if header_bytes(scope) > self.max_header_bytes:
            await _answer(send, *HEADERS_TOO_LARGE)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(send, *TOO_LARGE)
            return
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            await _answer(send, *TOO_LARGE)
            return
        if body is None:  # the client went away before sending its body
            return
        await self._integrate(scope, body, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _integrate(self, scope: Scope, body: bytes, send: Send) -> None:
        delivered = False
        held: list[Message] = []

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            # As a Lambda integration: nothing more to read, and no disconnect to learn about.
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await asyncio.wait_for(self.app(scope, replay, hold), timeout=self.integration_timeout)
        except TimeoutError:
            await _answer(send, *TIMED_OUT)
            return
        for message in held:
            await send(message)


async def _answer(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def http_api(
    app: Any,
    function: LocalFunction,
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    *,
    integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
) -> ApiGatewayLimits:
    """The HTTP API in front of the api function's ASGI `app`: every request runs under the function's role and
    is metered as its invocation, within the stage's throttle and the integration's limits."""
    served = metering.Invocations(iam.ServedAs(app, function.principal), function.logical_id, function.memory_size)
    throttle = stage_throttle(template, parameters)
    return ApiGatewayLimits(served, integration_timeout=integration_timeout, throttle=throttle)
