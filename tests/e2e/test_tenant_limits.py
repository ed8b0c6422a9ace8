"""Per-tenant limits on the local cloud: one tenant's burst is refused with 429s, another's batch runs untouched."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import openai
import pytest
from openai import OpenAI

from batchline.limits import RateLimiter
from localcloud import LocalCloud
from tests.e2e.runs import assert_each_line_once_in_order, create_job, jsonl, request_line, results, submit, wait

ROOT = Path(__file__).resolve().parents[2]
URL = "/v1/chat/completions"


def _loaded(path: Path) -> ModuleType:
    """A module of the api function as the local cloud imported it (the one uvicorn serves)."""
    found = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(path)]
    assert len(found) == 1, f"{path} is imported {len(found)} times"
    return found[0]


class FrozenClock:
    """The rate limiter's clock held at one instant, until thawed: a burst falls in one window, however slow."""

    def __init__(self, now: float) -> None:
        self.now: float | None = now

    def __call__(self) -> float:
        return time.time() if self.now is None else self.now

    def thaw(self) -> None:
        self.now = None


@pytest.fixture
def frozen(cloud: LocalCloud) -> Iterator[FrozenClock]:
    app = _loaded(ROOT / "functions" / "api" / "app.py").app
    deps = _loaded(ROOT / "functions" / "api" / "routes" / "deps.py")
    store = deps.get_store()
    clock = FrozenClock(2_000_000_000.5)
    app.dependency_overrides[deps.get_rate_limiter] = lambda: RateLimiter(store.rates, clock=clock)
    try:
        yield clock
    finally:
        app.dependency_overrides.pop(deps.get_rate_limiter, None)


def new_tenant(cloud: LocalCloud, name: str, **limits: int) -> tuple[str, OpenAI, str]:
    """A tenant with its own limits, an SDK client on its key (no retries, so 429s are seen) and a mock job."""
    admin = {"Authorization": f"Bearer {cloud.admin_key}"}
    created = httpx.post(f"{cloud.base_url}/admin/tenants", headers=admin, json={"name": name})
    created.raise_for_status()
    tenant = created.json()
    if limits:
        patched = httpx.patch(f"{cloud.base_url}/admin/tenants/{tenant['id']}", headers=admin, json={"limits": limits})
        assert patched.status_code == 200, patched.text
        assert {k: patched.json()["limits"][k] for k in limits} == limits
    job = create_job(cloud.base_url, cloud.admin_key, tenant["id"], provider={"type": "mock"})
    client = OpenAI(base_url=cloud.base_url, api_key=tenant["api_key"]["key"], max_retries=0)
    return tenant["id"], client, job


def test_a_tenants_burst_gets_429s_while_another_tenants_batch_completes_untouched(
    cloud: LocalCloud, frozen: FrozenClock
) -> None:
    _, bursty, _ = new_tenant(cloud, "bursty", requests_per_second=10)
    _, steady, steady_job = new_tenant(cloud, "steady")
    lines = [request_line(f"s{i}", URL, f"steady line {i}") for i in range(60)]
    batch = submit(steady, jsonl(lines), endpoint=URL, job_id=steady_job)

    # The burst: one window of tenant A's key holds 10 requests; the rest are refused as OpenAI refuses them.
    answers = [bursty.batches.with_raw_response.list() for _ in range(10)]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == [str(9 - i) for i in range(10)]
    assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"10"}
    refused = []
    for _ in range(5):
        with pytest.raises(openai.RateLimitError) as caught:
            bursty.batches.list()
        refused.append(caught.value)
    for error in refused:
        assert error.status_code == 429
        assert error.body["type"] == "rate_limit_error"  # type: ignore[index]
        headers = error.response.headers
        assert headers["retry-after"] == "1"
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-reset-requests"] == "500ms"

    # Tenant B, in the same instant: its key counts on its own, and its batch never waited on A.
    seen = steady.batches.with_raw_response.retrieve(batch.id)
    assert seen.status_code == 200
    assert int(seen.headers["x-ratelimit-remaining-requests"]) > 0
    frozen.thaw()  # time moves on; B polls to the end as any client would
    done = wait(steady, batch.id)
    result = results(steady, done)
    assert done.status == "completed"
    assert_each_line_once_in_order(result, [line["custom_id"] for line in lines])
    assert result.errors == [] and len(result.output) == 60

    # A's next window is open again.
    assert bursty.batches.with_raw_response.list().headers["x-ratelimit-remaining-requests"] == "9"


def test_a_batch_over_the_tenants_enqueued_limit_fails_with_request_limit_exceeded(cloud: LocalCloud) -> None:
    _, client, job = new_tenant(cloud, "small", enqueued_requests=5)
    over = submit(client, jsonl([request_line(f"o{i}", URL, "x") for i in range(6)]), endpoint=URL, job_id=job)
    failed = wait(client, over.id)
    assert failed.status == "failed"
    assert failed.errors is not None and failed.errors.data is not None
    [error] = failed.errors.data
    assert (error.code, error.line) == ("request_limit_exceeded", None)
    assert error.message is not None and "limit 5 requests" in error.message
    # Within the limit it runs, and once it ends its lines are free again for the next batch.
    for attempt in range(2):
        fits = submit(client, jsonl([request_line(f"f{attempt}-{i}", URL, "y") for i in range(5)]), endpoint=URL,
                      job_id=job)  # fmt: skip
        assert wait(client, fits.id).status == "completed"
