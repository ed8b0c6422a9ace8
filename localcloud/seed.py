"""Demo data for a fresh local stack: a tenant with an API key and a job on the mock provider.

Only the local cloud seeds (a deployed stack gets its tenants through the admin API), so this lives here and
not in the layer. It imports the core as the functions do: from the layer folder the local cloud puts on
sys.path once it has deployed, so import it only after that.
"""

from __future__ import annotations

import time

from batchline import ids
from batchline.auth import Authenticator
from batchline.config import ApiSettings
from batchline.models import ENDPOINTS, Job, MockProvider, Sla
from batchline.secret_values import secrets_manager_getter
from batchline.store import Store
from batchline.tenants import create_tenant


def seed_demo(settings: ApiSettings, *, model: str = "mock-llama-3.1-8b") -> dict[str, str]:
    """Create the demo tenant, key and job; answer them with the admin key, for printing."""
    store = Store(settings.table_name, settings.bucket_name)
    secret = secrets_manager_getter()
    auth = Authenticator(
        store, secret, admin_key_secret=settings.admin_key_secret, key_hash_secret=settings.key_hash_secret
    )
    tenant, _, api_key = create_tenant(store, auth, "demo")
    job = Job(
        id=ids.job_id(),
        tenant=tenant.id,
        model=model,
        provider=MockProvider(type="mock", latency_ms=5),
        use_case="demo batches on the mock provider",
        sla=Sla(completion_window="unlimited", max_concurrency=50),
        allowed_endpoints=list(ENDPOINTS),
        price_1m_tokens=0.2,
        created_at=int(time.time()),
    )
    store.put_job(job)
    return {
        "admin_key": secret(settings.admin_key_secret),
        "api_key": api_key,
        "tenant_id": tenant.id,
        "job_id": job.id,
    }
