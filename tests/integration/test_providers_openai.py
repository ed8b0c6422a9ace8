"""The `openai` provider against a real loopback HTTP server that speaks OpenAI and injects faults."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from batchline.jsonl import parse_request_line
from batchline.models import JobRecord, OpenAIProvider
from batchline.providers import REQUEST_TIMEOUT, UPSTREAM_UNAVAILABLE, Outcome, ProviderSettings, make_provider
from batchline.providers.openai_compat import OpenAICompatProvider
from batchline.providers.retry import Retrier
from tests.fakes import FakeOpenAI, Fault

MODEL = "custom-llama"
CHAT = "/v1/chat/completions"
SETTINGS = ProviderSettings(
    request_timeout=0.3,
    connect_timeout=0.3,
    max_attempts=3,
    backoff_base=0.01,
    backoff_max=0.02,
    allow_private_backends=True,  # the fake listens on loopback
)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def chat(text: str = "hello there") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def send(
    provider: OpenAICompatProvider, body: dict[str, Any], *, url: str = CHAT, deadline_in: float = 10.0
) -> Outcome:
    async def go() -> Outcome:
        try:
            return await provider.send(url, body, deadline=time.monotonic() + deadline_in)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def provider(base_url: str, settings: ProviderSettings = SETTINGS, **kwargs: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider(base_url, MODEL, settings=settings, **kwargs)


class Sleeps:
    """A sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# ------------------------------------------------------------------------------------------- success

ENDPOINT_BODIES = {
    "/v1/chat/completions": chat("say hi"),
    "/v1/completions": {"prompt": "say hi"},
    "/v1/embeddings": {"input": ["say hi"]},
    "/v1/responses": {"input": "say hi"},
}


@pytest.mark.parametrize("url", list(ENDPOINT_BODIES))
def test_each_endpoint_is_posted_with_the_jobs_model(fake: FakeOpenAI, url: str) -> None:
    job = JobRecord(
        id="job-1",
        tenant_id="t",
        model=MODEL,
        created_at=0,
        provider=OpenAIProvider(type="openai", base_url=fake.base_url),
    )
    p = make_provider(job, secret=lambda name: pytest.fail("no key configured"), settings=SETTINGS)
    assert isinstance(p, OpenAICompatProvider)

    out = send(p, {**ENDPOINT_BODIES[url], "model": "whatever-the-line-said"}, url=url)

    assert out.ok and out.status_code == 200 and out.attempts == 1
    assert out.request_id == "req_fake_1"
    assert out.body is not None and out.body["model"] == MODEL
    [request] = fake.requests
    assert request.path == url
    assert request.body == {**ENDPOINT_BODIES[url], "model": MODEL}
    assert request.headers["content-type"] == "application/json"
    # "say hi" is 2 words; the fake answers "Echo: say hi", 3 words (embeddings have no completion).
    assert out.usage() == ((2, 0, 2) if url.endswith("embeddings") else (2, 3, 5))


def test_a_lines_numbers_reach_the_upstream_as_the_line_holds_them(fake: FakeOpenAI) -> None:
    # As the worker sends a line plan accepted: its edges of JSON numbers (past 64 bits, the largest and
    # smallest doubles, -0.0), each read back by the upstream as the line's own reader reads it.
    numbers = b"[123456789012345678901234567890, -18446744073709551617, 1.7976931348623157e308, 5e-324, -0.0, 0.1, 1E2]"
    raw = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [], "n": %s}}'

    send(provider(fake.base_url), parse_request_line(raw % numbers)["body"])

    [request] = fake.requests
    assert repr(request.body["n"]) == repr(json.loads(numbers))
    assert None not in request.body["n"]


def test_answer_text_is_the_upstreams(fake: FakeOpenAI) -> None:
    out = send(provider(fake.base_url), chat("repeat after me"))
    assert out.body is not None
    assert out.body["choices"][0]["message"]["content"] == "Echo: repeat after me"


def test_base_url_without_v1_gets_the_full_path(fake: FakeOpenAI) -> None:
    assert send(provider(fake.url), chat()).ok
    assert [r.path for r in fake.requests] == [CHAT]


# ------------------------------------------------------------------------------------------------ key


def test_authorization_header_carries_the_secret_when_a_key_is_set(fake: FakeOpenAI) -> None:
    asked: list[str] = []

    def secret(name: str) -> str:
        asked.append(name)
        return "sk-test-123"

    job = JobRecord(
        id="job-1",
        tenant_id="t",
        model=MODEL,
        created_at=0,
        provider=OpenAIProvider(type="openai", base_url=fake.base_url, api_key_secret="vllm-key"),
    )
    p = make_provider(job, secret=secret, settings=SETTINGS)
    assert isinstance(p, OpenAICompatProvider)
    assert "sk-test-123" not in repr(p)
    assert send(p, chat()).ok
    assert asked == ["vllm-key"]
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test-123"


def test_no_authorization_header_without_a_key(fake: FakeOpenAI) -> None:
    assert send(provider(fake.base_url), chat()).ok
    assert "authorization" not in fake.requests[0].headers


def test_a_redirect_is_answered_not_followed() -> None:
    # The base URL was checked against metadata and private addresses; a Location header is not.
    followed: list[bytes] = []

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        followed.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    async def go() -> Outcome:
        elsewhere = await asyncio.start_server(target, "127.0.0.1", 0)
        location = f"http://127.0.0.1:{elsewhere.sockets[0].getsockname()[1]}/v1/chat/completions"

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
                         "Content-Length: 0\r\n\r\n".encode())  # fmt: skip
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(redirect, "127.0.0.1", 0)
        p = provider(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
        try:
            return await p.send(CHAT, chat(), deadline=time.monotonic() + 5)
        finally:
            await p.aclose()
            server.close()
            elsewhere.close()

    out = asyncio.run(go())
    assert out.status_code == 307 and out.attempts == 1 and not out.ok
    assert out.body is not None and out.body["error"]["type"] == "upstream_error"
    assert followed == []


# -------------------------------------------------------------------------------------------- retries


def test_429_with_retry_after_ms_waits_that_long_then_succeeds(fake: FakeOpenAI) -> None:
    fake.script(Fault.error(429, retry_after_ms=60))
    out = send(provider(fake.base_url), chat())
    assert out.ok and out.attempts == 2
    first, second = fake.requests
    assert first.fault.status == 429
    assert second.at - first.at >= 0.06


def test_retry_after_seconds_is_what_the_retrier_sleeps(fake: FakeOpenAI) -> None:
    fake.script(Fault.error(429, retry_after="1"))
    sleeps = Sleeps()
    out = send(provider(fake.base_url, retrier=Retrier(SETTINGS, sleep=sleeps)), chat())
    assert out.ok and out.attempts == 2
    assert sleeps.calls == [1.0]


def test_500_past_max_attempts_returns_the_last_500_with_its_body(fake: FakeOpenAI) -> None:
    fake.script("500", "500", "503", "ok")
    out = send(provider(fake.base_url), chat())
    assert out.status_code == 503 and not out.ok and out.attempts == 3
    assert out.body == {
        "error": {"message": "Injected fault 503", "type": "server_error", "param": None, "code": "fake_503"}
    }
    assert out.error_code is None
    assert fake.count == 3


def test_400_is_returned_at_once(fake: FakeOpenAI) -> None:
    fake.script("400")
    out = send(provider(fake.base_url), chat())
    assert out.status_code == 400 and out.attempts == 1
    assert out.body is not None and out.body["error"]["code"] == "fake_400"
    assert fake.count == 1


def test_dropped_connection_then_success(fake: FakeOpenAI) -> None:
    fake.script("drop")
    out = send(provider(fake.base_url), chat())
    assert out.ok and out.attempts == 2
    assert [r.fault.kind for r in fake.requests] == ["drop", "ok"]


def test_dropped_every_time_is_upstream_unavailable(fake: FakeOpenAI) -> None:
    fake.script("drop", "drop", "drop")
    out = send(provider(fake.base_url), chat())
    assert out.status_code is None and out.body is None
    assert out.error_code == UPSTREAM_UNAVAILABLE and out.attempts == 3


def test_slow_answer_once_then_success(fake: FakeOpenAI) -> None:
    fake.script(Fault.slow(2))
    out = send(provider(fake.base_url, SETTINGS.model_copy(update={"request_timeout": 0.15})), chat())
    assert out.ok and out.attempts == 2


def test_slow_every_time_is_request_timeout(fake: FakeOpenAI) -> None:
    fake.script(Fault.slow(2), Fault.slow(2))
    settings = SETTINGS.model_copy(update={"request_timeout": 0.15, "max_attempts": 2})
    started = time.monotonic()
    out = send(provider(fake.base_url, settings), chat())
    assert out.status_code is None and out.error_code == REQUEST_TIMEOUT and out.attempts == 2
    assert out.error_message and "timed out" in out.error_message
    assert time.monotonic() - started < 1.0  # two 0.15 s timeouts, not the 2 s answers


def test_last_http_answer_wins_over_a_later_failure_with_no_answer(fake: FakeOpenAI) -> None:
    fake.script("500", "drop", "drop")
    out = send(provider(fake.base_url), chat())
    assert out.status_code == 500 and out.attempts == 3


def test_connection_refused_is_upstream_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    out = send(provider(f"http://127.0.0.1:{port}/v1"), chat())
    assert out.error_code == UPSTREAM_UNAVAILABLE and out.attempts == 3
    assert out.request_id.startswith("req_")


def test_non_json_error_body_becomes_an_openai_error(fake: FakeOpenAI) -> None:
    fake.script("text", "text", "text")
    out = send(provider(fake.base_url), chat())
    assert out.status_code == 502 and out.attempts == 3
    assert out.body is not None and out.body["error"]["type"] == "upstream_error"
    assert "Bad Gateway" in out.body["error"]["message"]


def test_non_json_200_is_a_502_and_not_retried(fake: FakeOpenAI) -> None:
    fake.script("text=200")
    out = send(provider(fake.base_url), chat())
    assert out.status_code == 502 and not out.ok and out.attempts == 1
    assert out.body is not None and out.body["error"]["type"] == "upstream_error"


def test_body_marker_scripts_faults_per_request(fake: FakeOpenAI) -> None:
    out = send(provider(fake.base_url), chat("please [[fault:500,429=0,ok]]"))
    assert out.ok and out.attempts == 3
    assert [r.fault.status for r in fake.requests] == [500, 429, 200]


# ------------------------------------------------------------------------------------------- deadline


def test_deadline_already_passed_sends_nothing(fake: FakeOpenAI) -> None:
    out = send(provider(fake.base_url), chat(), deadline_in=-1)
    assert out.error_code == REQUEST_TIMEOUT and out.status_code is None
    assert fake.count == 0


def test_retry_after_beyond_the_deadline_returns_at_once(fake: FakeOpenAI) -> None:
    fake.script(Fault.error(429, retry_after="5"))
    started = time.monotonic()
    out = send(provider(fake.base_url), chat(), deadline_in=1.0)
    assert out.status_code == 429 and out.attempts == 1
    assert time.monotonic() - started < 0.5
    assert fake.count == 1


def test_no_attempt_starts_after_the_deadline(fake: FakeOpenAI) -> None:
    fake.script(*[Fault.error(500, retry_after_ms=150)] * 50)
    settings = SETTINGS.model_copy(update={"max_attempts": 50})
    p = provider(fake.base_url, settings)

    async def go() -> tuple[Outcome, float]:
        deadline = time.monotonic() + 0.4
        try:
            return await p.send(CHAT, chat(), deadline=deadline), deadline
        finally:
            await p.aclose()

    out, deadline = asyncio.run(go())
    # Attempts at about 0, 0.15 and 0.3 s; a fourth would start at 0.45 s, so the provider stops at 0.3 s.
    assert out.status_code == 500 and out.attempts == 3
    assert fake.count == 3
    assert all(r.at < deadline for r in fake.requests)
    assert time.monotonic() < deadline  # it returned instead of sleeping into the deadline


# ---------------------------------------------------------------------------------------- concurrency


def test_concurrent_sends_share_one_pooled_client(fake: FakeOpenAI) -> None:
    async def go() -> list[list[Outcome]]:
        p = provider(fake.base_url, SETTINGS.model_copy(update={"request_timeout": 5}))
        try:
            waves = []
            for wave in range(2):
                deadline = time.monotonic() + 10
                sends = [p.send(CHAT, chat(f"line {wave}-{i}"), deadline=deadline) for i in range(50)]
                waves.append(list(await asyncio.gather(*sends)))
            return waves
        finally:
            await p.aclose()

    waves = asyncio.run(go())
    for wave, outcomes in enumerate(waves):
        assert all(o.ok and o.attempts == 1 for o in outcomes)
        texts = [o.body["choices"][0]["message"]["content"] for o in outcomes if o.body]
        assert texts == [f"Echo: line {wave}-{i}" for i in range(50)]
    assert fake.count == 100
    # The second wave rode the first wave's kept-alive connections.
    assert len({r.client_port for r in fake.requests}) <= 50


class HeldServer:
    """A loopback HTTP/1.1 server, in the test's event loop, that answers nothing until `hold` requests arrived.

    So requests that are all in flight at once are seen to be: none finishes before the last one starts.
    """

    ANSWER = b'{"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}'

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.arrived = 0
        self.all_arrived = asyncio.Event()

    async def __aenter__(self) -> str:
        # A backlog for every connection at once: a refused SYN would be retried a second later.
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=max(self.hold, 100))
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def __aexit__(self, *exc: object) -> None:
        self.all_arrived.set()  # a failed test must not leave handlers holding: wait_closed waits for them
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:"))  # fmt: skip
                await reader.readexactly(length)
                self.arrived += 1
                if self.arrived >= self.hold:
                    self.all_arrived.set()
                await self.all_arrived.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(self.ANSWER), self.ANSWER))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its kept-alive connection
        finally:
            writer.close()


async def _send_held(count: int, settings: ProviderSettings = SETTINGS) -> list[Outcome]:
    """`count` sends at once to a HeldServer holding `count` requests; bounded, should the client queue any."""
    async with HeldServer(count) as base_url:
        p = provider(base_url, settings.model_copy(update={"request_timeout": 30, "connect_timeout": 30}))
        try:
            deadline = time.monotonic() + 30
            sends = asyncio.gather(*(p.send(CHAT, chat(f"line {i}"), deadline=deadline) for i in range(count)))
            return await asyncio.wait_for(sends, timeout=10)
        finally:
            await p.aclose()


def test_as_many_requests_as_the_pool_allows_are_open_at_once() -> None:
    count = SETTINGS.max_connections
    outcomes = asyncio.run(_send_held(count))
    assert len(outcomes) == count and all(o.ok and o.attempts == 1 for o in outcomes)


def _python_calls_per_request(count: int) -> float:
    """Python function calls made, client and held server together, per request of `count` sent at once."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    async def go() -> None:
        sys.setprofile(profile)
        try:
            await _send_held(count)
        finally:
            sys.setprofile(None)

    asyncio.run(go())
    return calls / count


def test_client_work_per_request_does_not_grow_with_the_requests_in_flight() -> None:
    # A pool that walks every queued request against every connection on each change costs O(in flight)
    # per request: at 100 in flight it spent ~70% of the worker's time there. Counted in calls, not time.
    few, many = _python_calls_per_request(10), _python_calls_per_request(100)
    assert many < 1.5 * few, (few, many)


def test_a_passed_in_client_is_not_closed(fake: FakeOpenAI) -> None:
    async def go() -> bool:
        async with aiohttp.ClientSession() as client:
            p = provider(fake.base_url, http_client=client)
            assert (await p.send(CHAT, chat(), deadline=time.monotonic() + 5)).ok
            await p.aclose()
            return client.closed

    assert asyncio.run(go()) is False
