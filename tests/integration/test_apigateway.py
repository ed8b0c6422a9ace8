"""The local API answers as API Gateway's HTTP API does at its stage throttle, payload limit and integration timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request

from localcloud.apigateway import ApiGatewayLimits, TokenBucket, stage_throttle
from localcloud.template import load_template
from tests.integration.conftest import ROOT

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    return {"bytes": len(await request.body())}


@app.get("/blocked")
async def blocked() -> None:
    await asyncio.Event().wait()  # never set: the integration cannot answer


def client(**limits: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=ApiGatewayLimits(app, **limits))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


def run(request: Callable[[httpx.AsyncClient], Awaitable[Any]], **limits: Any) -> Any:
    async def go() -> Any:
        async with client(**limits) as api:
            return await request(api)

    return asyncio.run(go())


def test_a_body_up_to_the_limit_reaches_the_app() -> None:
    answer = run(lambda api: api.post("/echo", content=b"x" * 1000), max_body_bytes=1000)
    assert (answer.status_code, answer.json()) == (200, {"bytes": 1000})


def test_a_body_over_the_limit_is_refused_before_the_app() -> None:
    async def chunks() -> Any:  # no content-length: counted as it arrives
        for _ in range(3):
            yield b"x" * 400

    declared = run(lambda api: api.post("/echo", content=b"x" * 1001), max_body_bytes=1000)
    streamed = run(lambda api: api.post("/echo", content=chunks()), max_body_bytes=1000)
    for answer in (declared, streamed):
        assert (answer.status_code, answer.json()) == (413, {"message": "Request Entity Too Large"})


def test_an_integration_that_does_not_answer_in_time_is_a_503() -> None:
    answer = run(lambda api: api.get("/blocked"), integration_timeout=0.05)
    assert (answer.status_code, answer.json()) == (503, {"message": "Service Unavailable"})


def test_the_defaults_are_the_http_apis_quotas() -> None:
    limits = ApiGatewayLimits(app)
    assert (limits.max_body_bytes, limits.integration_timeout) == (10 * 1024 * 1024, 30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_stage_throttle_answers_api_gateways_429_past_its_burst_and_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)

    async def burst(api: httpx.AsyncClient) -> list[tuple[int, Any]]:
        answers = [await api.post("/echo", content=b"x") for _ in range(4)]
        clock.now += 0.5  # one token back at 2 a second
        answers += [await api.post("/echo", content=b"x") for _ in range(2)]
        return [(a.status_code, a.json()) for a in answers]

    ok, throttled = (200, {"bytes": 1}), (429, {"message": "Too Many Requests"})
    assert run(burst, throttle=bucket) == [ok, ok, ok, throttled, ok, throttled]


def test_the_stage_throttle_is_the_templates_for_its_parameters() -> None:
    template = load_template(ROOT / "template.yaml")
    default = stage_throttle(template, {})
    assert default is not None and (default.rate, default.burst) == (100, 200)
    chosen = stage_throttle(template, {"ApiThrottleRate": "1000", "ApiThrottleBurst": "2000"})
    assert chosen is not None and (chosen.rate, chosen.burst) == (1000, 2000)


def test_headers_over_api_gateways_10_kb_are_refused_before_the_app() -> None:
    # The request line and header values count together; 10,240 bytes in all pass.
    fits = run(lambda api: api.post("/echo", content=b"x", headers={"x-pad": "p" * 9000}))
    assert fits.status_code == 200
    big = run(lambda api: api.post("/echo", content=b"x", headers={"x-pad": "p" * 100_000}))
    assert (big.status_code, big.json()) == (431, {"message": "Request Header Fields Too Large"})
