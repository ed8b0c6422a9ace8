"""API Gateway's HTTP API limits in front of the app uvicorn serves, answered as API Gateway answers them.

On AWS the api function sits behind an HTTP API, which refuses a request body over 10 MB with 413
`{"message":"Request Entity Too Large"}` before any Lambda runs, and answers 503
`{"message":"Service Unavailable"}` when the integration has not answered within 30 seconds (the
function may still be running). The Lambda proxy integration buffers both ways: the function gets the
whole body and API Gateway sends the whole response, which is what this wrapper does too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
MAX_BODY_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 30.0

TOO_LARGE = (413, {"message": "Request Entity Too Large"})
TIMED_OUT = (503, {"message": "Service Unavailable"})


class _TooLarge(Exception):
    pass


class ApiGatewayLimits:
    """ASGI middleware: the HTTP API's payload limit and integration timeout."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.integration_timeout = integration_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
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
