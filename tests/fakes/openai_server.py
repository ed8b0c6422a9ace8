"""A loopback OpenAI-compatible server for tests: four endpoints, recorded requests, scripted faults.

Faults come from a queue (`fake.script(...)`, consumed one per request, whatever its body) or, when the
queue is empty, from a marker in the request's text: `[[fault:429=0,500,ok]]` makes the first attempt of that
exact body a 429 with `Retry-After: 0`, the second a 500 and every later one a success (the last directive
repeats). Tokens: `ok`, `<status>` (an OpenAI error body), `<status>=<seconds>` (with Retry-After),
`<status>ms=<ms>` (with retry-after-ms), `slow=<seconds>` (answers after that long), `drop` (closes the
socket without answering), `text` / `text=<status>` (a non-JSON body, 502 unless given).

A backend's pace, set at construction: `latency` (seconds every answer takes) and `throttle_above` (a request
that arrives while that many are already in flight is answered 429 at once, as an overloaded backend's rate
limiter does). The server counts what it has in flight and its peak (`in_flight`, `peak_in_flight`).
`before_answer`, if set, is called with each request as recorded, in the request's thread, before it is
answered: a test holds requests there to drive an interleaving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import pytest

from batchline.providers.shapes import MODERATION_CATEGORIES

MARKER = re.compile(r"\[\[fault:([^\]]+)\]\]")
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations")


@dataclass(frozen=True)
class Fault:
    """What the server does with one request."""

    kind: Literal["ok", "status", "slow", "drop", "text"]
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @classmethod
    def ok(cls) -> Fault:
        return cls("ok")

    @classmethod
    def error(cls, status: int, *, retry_after: str | None = None, retry_after_ms: int | None = None) -> Fault:
        headers: list[tuple[str, str]] = []
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        if retry_after_ms is not None:
            headers.append(("retry-after-ms", str(retry_after_ms)))
        return cls("status", status, tuple(headers))

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", seconds=seconds)

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def text(cls, status: int = 502) -> Fault:
        return cls("text", status)

    @classmethod
    def parse(cls, token: str) -> Fault:
        """A fault from one marker token (see the module docstring)."""
        token = token.strip()
        name, _, arg = token.partition("=")
        if name == "ok":
            return cls.ok()
        if name == "drop":
            return cls.drop()
        if name == "slow":
            return cls.slow(float(arg or 1))
        if name == "text":
            return cls.text(int(arg or 502))
        if name.endswith("ms") and name[:-2].isdigit():
            return cls.error(int(name[:-2]), retry_after_ms=int(arg))
        if name.isdigit():
            return cls.error(int(name), retry_after=arg or None)
        raise ValueError(f"Unknown fault token {token!r}")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it; `at` is `time.monotonic()` on arrival."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float
    client_port: int
    fault: Fault = field(default_factory=Fault.ok)
    in_flight: int = 0  # requests the server had in flight as this one arrived, itself included


def _text(value: Any) -> str:
    """The text in a prompt, message content, or input, wherever it sits."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(t for t in (_text(v) for v in value) if t)
    if isinstance(value, dict):
        return _text(value.get("content", value.get("text", "")))
    return ""


def prompt_text(path: str, body: dict[str, Any]) -> str:
    """The request's last user text: what the fake echoes."""
    if path.endswith("/chat/completions"):
        messages = body.get("messages") or [{}]
        return _text(messages[-1])
    if path.endswith("/completions"):
        return _text(body.get("prompt"))
    return _text(body.get("input"))


def fake_answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The fake's deterministic OpenAI answer: `Echo: <text>`, the request's model, word counts as usage."""
    model = body.get("model")
    prompt = prompt_text(path, body)
    answer = f"Echo: {prompt}"
    p, c = max(len(prompt.split()), 1), len(answer.split())
    if path.endswith("/moderations"):
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        flagged = {name: False for name in MODERATION_CATEGORIES}
        result = {"flagged": False, "categories": flagged, "category_scores": dict.fromkeys(flagged, 0.001),
                  "category_applied_input_types": {name: ["text"] for name in flagged}}  # fmt: skip
        return {"id": "modr-fake", "model": model, "results": [result for _ in inputs]}
    if path.endswith("/embeddings"):
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [b / 255 for b in hashlib.sha256(t.encode()).digest()[:4]]}
            for i, t in enumerate(inputs)
        ]
        return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": p, "total_tokens": p}}
    if path.endswith("/responses"):
        message = {"type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": answer, "annotations": []}]}  # fmt: skip
        usage = {"input_tokens": p, "output_tokens": c, "total_tokens": p + c}
        return {"id": "resp_fake", "object": "response", "created_at": int(time.time()), "status": "completed",
                "model": model, "output": [message], "usage": usage}  # fmt: skip
    usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [choice], "usage": usage}  # fmt: skip
    choice = {"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}
    return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [choice], "usage": usage}  # fmt: skip


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # tests open dozens of connections at once; the default backlog is 5

    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-answer are part of the tests, not errors."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so tests can see connection reuse
    _counted = False  # this request is in the fake's in-flight count
    # Headers and body leave in one write, without Nagle: otherwise each answer waits ~40 ms for an ACK.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def setup(self) -> None:
        super().setup()
        self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        overloaded, in_flight = fake._enter()
        self._counted = True
        try:
            self._answer(fake, raw, overloaded, in_flight)
        finally:
            self._uncount()

    def _uncount(self) -> None:
        # Before the answer leaves, not after: a client that has its answer may send its next request at
        # once, and this one must not be counted in flight beside it.
        if self._counted:
            self._counted = False
            self.server.fake._leave()

    def _answer(self, fake: FakeOpenAI, raw: bytes, overloaded: bool, in_flight: int) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        fault = Fault.error(429) if overloaded else fake._fault_for(self.path, raw)
        recorded = RecordedRequest(
            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(),
            self.client_address[1], fault, in_flight,
        )  # fmt: skip
        fake._record(recorded)
        if fake.before_answer is not None:
            fake.before_answer(recorded)
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.kind == "slow" and fake._stopping.wait(fault.seconds):
            return
        if fake.latency and not overloaded and fake._stopping.wait(fake.latency):
            return
        if fault.kind == "text":
            self._send(fault.status, b"<html><body>Bad Gateway</body></html>", "text/html")
        elif fault.kind == "status":
            error = {"message": f"Injected fault {fault.status}", "type": "server_error", "param": None,
                     "code": f"fake_{fault.status}"}  # fmt: skip
            self._send_json(fault.status, {"error": error}, fault.headers)
        elif self.path not in ENDPOINTS:
            self._send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error"}})
        elif not isinstance(body, dict):
            self._send_json(400, {"error": {"message": "Body is not a JSON object", "type": "invalid_request_error"}})
        else:
            self._send_json(200, fake_answer(self.path, body))

    def _send_json(self, status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, kind: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._uncount()
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_fake_{self.server.fake.count}")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (a timeout under test)


class FakeOpenAI:
    """A real HTTP server on 127.0.0.1 (a free port) in a background thread; see the module docstring."""

    def __init__(self, *, latency: float = 0.0, throttle_above: int | None = None) -> None:
        self.latency = latency
        self.throttle_above = throttle_above
        self.before_answer: Callable[[RecordedRequest], None] | None = None
        self._in_flight = 0
        self._peak = 0
        self._throttled = 0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Fault] = deque()
        self._seen: dict[str, int] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        """Listen on a free loopback port and serve in a daemon thread."""
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake slow answers and close every open connection."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------- state

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in `/v1`."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests in flight at once since start (or reset)."""
        with self._lock:
            return self._peak

    @property
    def throttled(self) -> int:
        """Requests answered 429 for arriving over `throttle_above`."""
        with self._lock:
            return self._throttled

    def _enter(self) -> tuple[bool, int]:
        """Count a request in; whether it arrived over `throttle_above`, and how many are in flight with it."""
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            overloaded = self.throttle_above is not None and self._in_flight > self.throttle_above
            self._throttled += overloaded
            return overloaded, self._in_flight

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def script(self, *faults: Fault | str) -> None:
        """Queue faults for the next requests, one each, before any body marker is considered."""
        with self._lock:
            self._queue.extend(f if isinstance(f, Fault) else Fault.parse(f) for f in faults)

    def reset(self) -> None:
        """Forget requests, queued faults and marker attempt counts."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self._seen.clear()
            self._peak = self._in_flight
            self._throttled = 0

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _fault_for(self, path: str, raw: bytes) -> Fault:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            match = MARKER.search(raw.decode("utf-8", "replace"))
            if match is None:
                return Fault.ok()
            key = hashlib.sha256(path.encode() + b"\0" + raw).hexdigest()
            attempt = self._seen.get(key, 0)
            self._seen[key] = attempt + 1
        tokens = match.group(1).split(",")
        return Fault.parse(tokens[min(attempt, len(tokens) - 1)])


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI, stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake
