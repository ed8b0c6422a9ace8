"""API keys: issued once, kept only as keyed hashes, resolved to a tenant (or the admin) per request."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from batchline import ids
from batchline.data.tenants import Tenants
from batchline.errors import Forbidden, Unauthenticated
from batchline.models import ApiKeyRecord

# How long a warm container trusts a resolved key before asking DynamoDB again. Revoking a key
# is immediate in the container that revoked it and takes at most this long in the others.
KEY_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's key, or the stack's admin key."""

    tenant_id: str | None
    key_id: str | None = None
    # The tenant's own request rate per key; None: the stack's default.
    requests_per_second: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    def require_tenant(self) -> str:
        if self.tenant_id is None:
            raise Forbidden("This route takes a project API key, not the admin key.")
        return self.tenant_id

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("This route needs the admin key.")


ADMIN = Principal(tenant_id=None)


class Authenticator:
    """Resolves `Authorization: Bearer <key>`; secrets come from a getter (Secrets Manager in Lambda)."""

    def __init__(
        self,
        tenants: Tenants,
        secret: Callable[[str], str],
        *,
        admin_key_secret: str,
        key_hash_secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = tenants
        self._secret = secret
        self._admin_key_secret = admin_key_secret
        self._key_hash_secret = key_hash_secret
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def hash_key(self, key: str) -> str:
        """HMAC-SHA256 under a stack secret: a leaked table alone cannot be used to test guesses."""
        pepper = self._secret(self._key_hash_secret).encode()
        return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthenticated(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        if hmac.compare_digest(key.encode(), self._secret(self._admin_key_secret).encode()):
            return ADMIN
        key_hash = self.hash_key(key)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key_hash)
        if cached and cached[0] > now:
            return cached[1]
        record = self._tenants.find_api_key(key_hash)
        if record is None:
            raise Unauthenticated("Incorrect API key provided.", code="invalid_api_key")
        # Read with the key, and cached as long: a limit an admin changes holds everywhere within that time.
        limits = self._tenants.get(record.tenant_id).limits
        principal = Principal(
            tenant_id=record.tenant_id, key_id=record.id, requests_per_second=limits.requests_per_second
        )
        with self._lock:
            self._cache[key_hash] = (now + KEY_CACHE_SECONDS, principal)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from this container's cache."""
        with self._lock:
            self._cache = {h: v for h, v in self._cache.items() if v[1].key_id != key_id}

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop a tenant's keys from this container's cache (its limits changed)."""
        with self._lock:
            self._cache = {h: v for h, v in self._cache.items() if v[1].tenant_id != tenant_id}

    def issue_key(self, tenant_id: str) -> tuple[ApiKeyRecord, str]:
        """A new key for a tenant: the record kept, and the key itself, shown only this once."""
        key = ids.api_key_secret()
        record = ApiKeyRecord(
            id=ids.api_key_id(), tenant_id=tenant_id, key_hash=self.hash_key(key), created_at=int(time.time())
        )
        self._tenants.put_api_key(record)
        return record, key
