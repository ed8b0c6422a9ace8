"""Outcome, Retry-After parsing, the Retrier's deadline rules, URL joining and make_provider's choice."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from batchline.models import BedrockProvider as BedrockConfig
from batchline.models import JobRecord
from batchline.models import MockProvider as MockConfig
from batchline.models import OpenAIProvider as OpenAIConfig
from batchline.providers import (
    REQUEST_TIMEOUT,
    UPSTREAM_UNAVAILABLE,
    Outcome,
    Provider,
    ProviderSettings,
    make_provider,
)
from batchline.providers.bedrock import BedrockProvider
from batchline.providers.mock import MockProvider
from batchline.providers.openai_compat import OpenAICompatProvider, answer_body, endpoint_url
from batchline.providers.retry import Attempt, Retrier, is_retryable_status, parse_retry_after

# ------------------------------------------------------------------------------------------- Outcome


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}, (3, 4, 7)),  # chat, completions
        ({"prompt_tokens": 5, "total_tokens": 5}, (5, 0, 5)),  # embeddings
        ({"input_tokens": 2, "output_tokens": 9, "total_tokens": 11}, (2, 9, 11)),  # responses
        ({"input_tokens": 2, "output_tokens": 9}, (2, 9, 11)),  # total missing: the sum
        ({"prompt_tokens": "many", "completion_tokens": True}, (0, 0, 0)),  # not numbers
    ],
)
def test_usage_reads_each_endpoints_names(usage: dict[str, object], expected: tuple[int, int, int]) -> None:
    assert Outcome.answer(200, {"usage": usage}).usage() == expected


def test_usage_is_zero_without_a_usage_or_a_body() -> None:
    assert Outcome.answer(200, {"choices": []}).usage() == (0, 0, 0)
    assert Outcome.failure(REQUEST_TIMEOUT, "slow").usage() == (0, 0, 0)


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (299, True), (300, False), (429, False)])
def test_ok_is_2xx(status: int, ok: bool) -> None:
    assert Outcome.answer(status, {}).ok is ok


def test_failure_has_no_answer_and_a_generated_request_id() -> None:
    out = Outcome.failure(UPSTREAM_UNAVAILABLE, "refused")
    assert (out.status_code, out.body, out.ok) == (None, None, False)
    assert out.error_code == UPSTREAM_UNAVAILABLE and out.error_message == "refused"
    assert out.request_id.startswith("req_") and out.request_id != Outcome.failure("x", "y").request_id


def test_answer_keeps_the_upstream_request_id() -> None:
    assert Outcome.answer(200, {}, "req-upstream").request_id == "req-upstream"
    assert Outcome.answer(200, {}).request_id.startswith("req_")


# ---------------------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 2, 3, 4, 12, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == 7.0
    assert parse_retry_after({"retry-after": later}, now=now.timestamp() + 60) == 0.0


def test_parse_retry_after_reads_aiohttp_headers_case_insensitively() -> None:
    assert parse_retry_after(CIMultiDictProxy(CIMultiDict({"Retry-After": "2"}))) == 2.0


@pytest.mark.parametrize(("status", "retry"), [(408, True), (409, True), (429, True), (500, True), (503, True),
                                                (400, False), (401, False), (404, False), (422, False)])  # fmt: skip
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


# -------------------------------------------------------------------------------------------- Retrier


class FakeTime:
    """A clock that only moves when the Retrier sleeps (or an attempt says it took time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_script(
    script: list[Attempt], *, deadline_in: float = 1000, settings: ProviderSettings | None = None, took: float = 0
) -> tuple[Outcome, FakeTime, int]:
    t = FakeTime()
    calls = 0

    async def attempt() -> Attempt:
        nonlocal calls
        result = script[min(calls, len(script) - 1)]
        calls += 1
        t.now += took
        return result

    retrier = Retrier(settings or ProviderSettings(), clock=t.clock, sleep=t.sleep, rng=random.Random(7))
    out = asyncio.run(retrier.run(attempt, deadline=t.now + deadline_in))
    return out, t, calls


E500 = Attempt(Outcome.answer(500, {"error": {}}), retryable=True)
E429 = Attempt(Outcome.answer(429, {"error": {}}), retryable=True, retry_after=2.0)
DROP = Attempt(Outcome.failure(UPSTREAM_UNAVAILABLE, "dropped"), retryable=True)
OK = Attempt(Outcome.answer(200, {"ok": True}))


def test_retrier_returns_the_first_final_outcome() -> None:
    out, t, calls = run_script([E500, E429, OK])
    assert out.ok and out.attempts == 3 and calls == 3
    assert t.sleeps[1] == 2.0  # Retry-After honoured exactly
    assert 0 <= t.sleeps[0] <= 0.5  # full jitter under base * 2^0


def test_full_jitter_grows_and_is_capped() -> None:
    settings = ProviderSettings(max_attempts=8, backoff_base=1, backoff_max=3)
    _, t, calls = run_script([E500], settings=settings)
    assert calls == 8 and len(t.sleeps) == 7
    ceilings = [1, 2, 3, 3, 3, 3, 3]
    assert all(0 <= s <= c for s, c in zip(t.sleeps, ceilings, strict=True))
    assert len(set(t.sleeps)) == 7  # jittered, not a fixed schedule


def test_retry_after_is_capped_by_max_retry_after() -> None:
    long = Attempt(Outcome.answer(429, {}), retryable=True, retry_after=3600)
    _, t, _ = run_script([long, OK], settings=ProviderSettings(max_retry_after=30))
    assert t.sleeps == [30]


def test_no_wait_that_would_end_past_the_deadline() -> None:
    out, t, calls = run_script([E429], deadline_in=5)  # waits of 2 s: attempts at 0, 2, 4 only
    assert calls == 3 and t.sleeps == [2.0, 2.0]
    assert out.status_code == 429 and out.attempts == 3


def test_no_attempt_after_the_deadline_even_when_attempts_are_slow() -> None:
    out, _, calls = run_script([E500], deadline_in=10, took=6, settings=ProviderSettings(max_attempts=9))
    assert calls == 2  # the second ended at 12 s, past the deadline
    assert out.status_code == 500


def test_deadline_already_past_is_request_timeout_without_an_attempt() -> None:
    out, _, calls = run_script([OK], deadline_in=0)
    assert calls == 0
    assert out.error_code == REQUEST_TIMEOUT and out.status_code is None


def test_last_http_answer_wins_after_exhausted_retries() -> None:
    out, _, _ = run_script([E500, DROP, DROP], settings=ProviderSettings(max_attempts=3))
    assert out.status_code == 500 and out.attempts == 3


def test_no_answer_ever_keeps_the_failure_code() -> None:
    out, _, _ = run_script([DROP], settings=ProviderSettings(max_attempts=3))
    assert out.error_code == UPSTREAM_UNAVAILABLE and out.attempts == 3


def test_non_retryable_outcome_is_returned_at_once() -> None:
    bad = Attempt(Outcome.answer(400, {"error": {"message": "no"}}))
    out, t, calls = run_script([bad, OK])
    assert (out.status_code, calls, t.sleeps) == (400, 1, [])


# ----------------------------------------------------------------------------------- HTTP helpers


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ("http://h:8000/v1", "/v1/chat/completions", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/v1/", "/v1/embeddings", "http://h:8000/v1/embeddings"),
        ("http://h:8000", "/v1/responses", "http://h:8000/v1/responses"),
        ("https://gw/openai", "/v1/completions", "https://gw/openai/v1/completions"),
    ],
)
def test_endpoint_url(base: str, url: str, expected: str) -> None:
    assert endpoint_url(base, url) == expected


def test_answer_body_wraps_a_non_error_json_body_of_a_failure() -> None:
    status, body = answer_body(422, b'{"detail": "bad"}', "Unprocessable Entity")
    assert status == 422
    assert body["error"]["type"] == "upstream_error" and '"detail": "bad"' in body["error"]["message"]


def test_answer_body_truncates_long_text() -> None:
    status, body = answer_body(500, b"x" * 50_000, "Internal Server Error")
    assert status == 500 and len(body["error"]["message"]) < 1200


def test_answer_body_keeps_openai_error_bodies() -> None:
    error = {"error": {"message": "m", "type": "invalid_request_error", "code": "c"}}
    assert answer_body(400, json.dumps(error).encode(), "Bad Request") == (400, error)


# ----------------------------------------------------------------------------------- make_provider


def _job(provider: OpenAIConfig | BedrockConfig | MockConfig) -> JobRecord:
    return JobRecord(id="job-1", tenant_id="t", model="m", provider=provider, created_at=0)


def test_make_provider_picks_by_type() -> None:
    def no_secret(name: str) -> str:
        raise AssertionError(f"secret {name} fetched without a key configured")

    async def build() -> list[Provider]:
        made = [
            make_provider(_job(OpenAIConfig(type="openai", base_url="http://x/v1")), secret=no_secret),
            make_provider(
                _job(BedrockConfig(type="bedrock", region="eu-west-1", model_id="amazon.nova-lite-v1:0")),
                secret=no_secret,
            ),
            make_provider(_job(MockConfig(type="mock", latency_ms=5, failure_rate=0.5)), secret=no_secret),
        ]
        for p in made:
            await p.aclose()
        return made

    openai, bedrock, mock = asyncio.run(build())
    assert isinstance(openai, OpenAICompatProvider) and openai.model == "m"
    assert isinstance(bedrock, BedrockProvider)
    assert (bedrock.model, bedrock.model_id, bedrock.region) == ("m", "amazon.nova-lite-v1:0", "eu-west-1")
    assert isinstance(mock, MockProvider) and (mock.latency_ms, mock.failure_rate) == (5, 0.5)
