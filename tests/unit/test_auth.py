"""API keys: keyed hashes, admin key, revocation and the per-container cache."""

from __future__ import annotations

import pytest

from batchline.auth import KEY_CACHE_SECONDS, Authenticator
from batchline.errors import Forbidden, Unauthenticated
from batchline.models import ApiKeyRecord, TenantLimits, TenantRecord

SECRETS = {"admin": "the-admin-key", "pepper": "pepper-1"}


class FakeTenants:
    """Keys by hash, counting look-ups."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKeyRecord] = {}
        self.lookups = 0

    def put_api_key(self, record: ApiKeyRecord) -> None:
        self.keys[record.key_hash] = record

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        self.lookups += 1
        return self.keys.get(key_hash)

    def get(self, tenant_id: str) -> TenantRecord:
        return TenantRecord(
            id=tenant_id, name=tenant_id, created_at=0, limits=TenantLimits(requests_per_second=len(tenant_id))
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts() -> tuple[Authenticator, FakeTenants, Clock]:
    store, clock = FakeTenants(), Clock()
    auth = Authenticator(
        store,  # type: ignore[arg-type]
        SECRETS.__getitem__,
        admin_key_secret="admin",
        key_hash_secret="pepper",
        clock=clock,
    )
    return auth, store, clock


def test_an_issued_key_resolves_to_its_tenant_and_is_stored_only_hashed(parts) -> None:
    auth, store, _ = parts
    record, key = auth.issue_key("tenant_a")
    assert key.startswith("sk-bl-") and len(key) > 40
    assert key not in repr(store.keys) and key != record.key_hash
    principal = auth.authenticate(f"Bearer {key}")
    assert principal.tenant_id == "tenant_a" and principal.key_id == record.id
    assert principal.require_tenant() == "tenant_a"
    assert principal.requests_per_second == len("tenant_a")  # the tenant's own rate, read with the key


def test_the_hash_depends_on_the_stack_secret(parts) -> None:
    auth, _, _ = parts
    first = auth.hash_key("sk-bl-x")
    SECRETS["pepper"] = "pepper-2"
    try:
        assert auth.hash_key("sk-bl-x") != first
    finally:
        SECRETS["pepper"] = "pepper-1"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Token abc", "Bearer sk-bl-unknown"])
def test_missing_or_unknown_keys_are_unauthenticated(parts, header: str | None) -> None:
    auth, _, _ = parts
    with pytest.raises(Unauthenticated):
        auth.authenticate(header)


def test_the_admin_key_is_admin_and_not_a_tenant(parts) -> None:
    auth, _, _ = parts
    principal = auth.authenticate("Bearer the-admin-key")
    assert principal.is_admin
    with pytest.raises(Forbidden):
        principal.require_tenant()


def test_lookups_are_cached_for_a_short_ttl_and_forget_drops_a_revoked_key(parts) -> None:
    auth, store, clock = parts
    record, key = auth.issue_key("tenant_a")
    auth.authenticate(f"Bearer {key}")
    auth.authenticate(f"Bearer {key}")
    assert store.lookups == 1
    clock.now += KEY_CACHE_SECONDS + 1
    auth.authenticate(f"Bearer {key}")
    assert store.lookups == 2
    del store.keys[record.key_hash]
    auth.forget(record.id)
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {key}")
