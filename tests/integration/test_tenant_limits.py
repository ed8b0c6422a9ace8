"""Per-tenant limits on the api: a request rate per API key (429 with OpenAI's headers) and the admin's PATCH."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from batchline.errors import RateLimited
from batchline.limits import RateLimiter, reset_text
from batchline.store import Store
from tests.integration.api_routes import ADMIN_HEADERS
from tests.integration.conftest import Tenant


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(api: TestClient, store: Store) -> Iterator[Clock]:
    """The api's rate limiter on a clock of the test's."""
    clock = Clock(1_800_000_000.25)
    app = sys.modules["batchline_fn_api"].app
    deps = sys.modules["routes.deps"]
    app.dependency_overrides[deps.get_rate_limiter] = lambda: RateLimiter(store.rates, clock=clock)
    return clock


def limit(api: TestClient, tenant: Tenant, **limits: object) -> dict[str, object]:
    answer = api.patch(f"/v1/admin/tenants/{tenant.id}", headers=ADMIN_HEADERS, json={"limits": limits})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_patch_sets_a_tenants_limits_and_answers_the_tenant_with_them(api: TestClient, tenant: Tenant) -> None:
    answer = limit(api, tenant, requests_per_second=10)
    assert answer["id"] == tenant.id and answer["object"] == "tenant"
    assert answer["limits"] == {"requests_per_second": 10, "enqueued_requests": None}
    # A limit not named stays; null puts one back to the stack's default.
    assert limit(api, tenant, enqueued_requests=500)["limits"] == {"requests_per_second": 10, "enqueued_requests": 500}
    assert limit(api, tenant, requests_per_second=None)["limits"] == {
        "requests_per_second": None,
        "enqueued_requests": 500,
    }
    listed = api.get("/v1/admin/tenants", headers=ADMIN_HEADERS).json()["data"]
    assert [t["limits"] for t in listed if t["id"] == tenant.id] == [
        {"requests_per_second": None, "enqueued_requests": 500}
    ]


@pytest.mark.parametrize(
    ("limits", "param"),
    [
        ({"requests_per_second": 0}, "limits.requests_per_second"),
        ({"requests_per_second": "5"}, "limits.requests_per_second"),
        ({"requests_per_second": 2.5}, "limits.requests_per_second"),
        ({"enqueued_requests": -1}, "limits.enqueued_requests"),
        ({"enqueued_requests": 10**12}, "limits.enqueued_requests"),
        ({"requests_per_second": 1001}, "limits.requests_per_second"),
        ({"tokens_per_minute": 5}, "limits.tokens_per_minute"),
    ],
)
def test_patch_refuses_a_bad_limit_naming_the_field(
    api: TestClient, tenant: Tenant, limits: dict[str, object], param: str
) -> None:
    answer = api.patch(f"/v1/admin/tenants/{tenant.id}", headers=ADMIN_HEADERS, json={"limits": limits})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == param


def test_patch_is_the_admins_and_names_an_existing_tenant(api: TestClient, tenant: Tenant) -> None:
    body = {"limits": {"requests_per_second": 1}}
    assert api.patch(f"/v1/admin/tenants/{tenant.id}", headers=tenant.headers, json=body).status_code == 403
    assert api.patch("/v1/admin/tenants/tenant_nope", headers=ADMIN_HEADERS, json=body).status_code == 404


def test_every_tenant_answer_carries_the_rate_headers(api: TestClient, tenant: Tenant, clock: Clock) -> None:
    limit(api, tenant, requests_per_second=5)
    ok = api.get("/v1/files", headers=tenant.headers)
    missing = api.get("/v1/files/file-nope", headers=tenant.headers)
    assert (ok.status_code, missing.status_code) == (200, 404)
    for answer, remaining in ((ok, "4"), (missing, "3")):
        assert answer.headers["x-ratelimit-limit-requests"] == "5"
        assert answer.headers["x-ratelimit-remaining-requests"] == remaining
        assert answer.headers["x-ratelimit-reset-requests"] == "750ms"


def test_a_key_over_its_rate_gets_429_until_the_next_second_and_other_tenants_are_untouched(
    api: TestClient, tenant: Tenant, other_tenant: Tenant, clock: Clock
) -> None:
    limit(api, tenant, requests_per_second=3)
    assert [api.get("/v1/batches", headers=tenant.headers).status_code for _ in range(3)] == [200] * 3
    refused = api.get("/v1/batches", headers=tenant.headers)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "3" in error["message"]
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "750ms"
    # Another tenant's key counts on its own (the stack's default rate).
    assert api.get("/v1/batches", headers=other_tenant.headers).status_code == 200
    clock.now += 0.75  # the next second: a new window
    again = api.get("/v1/batches", headers=tenant.headers)
    assert again.status_code == 200
    assert again.headers["x-ratelimit-remaining-requests"] == "2"
    assert again.headers["x-ratelimit-reset-requests"] == "1s"


def test_admin_routes_are_not_counted(api: TestClient, tenant: Tenant, clock: Clock) -> None:
    limit(api, tenant, requests_per_second=1)
    assert api.get("/v1/admin/tenants", headers=ADMIN_HEADERS).headers.get("x-ratelimit-limit-requests") is None
    assert api.get("/v1/files", headers=tenant.headers).status_code == 200


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.12, "120ms"), (0.0001, "1ms"), (1.0, "1s"), (59.2, "1m0s"), (90, "1m30s")]
)
def test_reset_is_written_as_openai_writes_it(seconds: float, text: str) -> None:
    assert reset_text(seconds) == text


def test_the_count_is_shared_by_every_container_and_its_items_expire(store: Store) -> None:
    """Two api containers (two limiters over one table) see one count; each window's item carries a TTL."""
    clock = Clock(1_800_000_000.9)
    first, second = RateLimiter(store.rates, clock=clock), RateLimiter(store.rates, clock=clock)
    assert [first.hit("key_a", 3).remaining, second.hit("key_a", 3).remaining, first.hit("key_a", 3).remaining] == [
        2,
        1,
        0,
    ]
    with pytest.raises(RateLimited) as refused:
        second.hit("key_a", 3)
    assert refused.value.headers["Retry-After"] == "1"
    assert refused.value.headers["x-ratelimit-reset-requests"] == "100ms"
    assert second.hit("key_b", 3).remaining == 2  # another key, its own count
    item = store._table.resource.get_item(Key={"pk": "rate#key_a#1800000000", "sk": "rate"})["Item"]
    assert int(item["n"]) == 3  # the refused request added nothing
    assert 1_800_000_000 < int(item["ttl"]) <= 1_800_000_000 + 3600
