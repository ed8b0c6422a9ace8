"""Demo data for a fresh local stack: a tenant with an API key and a job on the mock provider.

Only the local cloud seeds (a deployed stack gets its tenants through the admin API), so this lives here and
not in the layer. It imports the core as the functions do: from the layer folder the local cloud puts on
sys.path once it has deployed, so import it only after that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import boto3

from batchline import ids
from batchline.auth import Authenticator
from batchline.config import ApiSettings
from batchline.models import ENDPOINTS, ApiKeyRecord, JobRecord, MockProvider, Sla, TenantRecord
from batchline.secret_values import secrets_manager_getter
from batchline.store import Store
from batchline.tenants import create_tenant

DEMO_ALIASES = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small", "omni-moderation-latest")


def seed_demo(
    settings: ApiSettings, *, keep: Mapping[str, str] | None = None, model: str = "mock-llama-3.1-8b"
) -> dict[str, str]:
    """Create the demo tenant, key and job; answer them with the admin key, for printing.

    `keep`: what an earlier run answered (its state file): the same admin key, tenant, API key and job
    are made again, so a user's scripts and notebooks keep working across restarts.
    """
    store = Store(settings.table_name, settings.bucket_name)
    if keep:
        # The stack generated its own admin key; the one the user already has replaces it.
        boto3.client("secretsmanager").put_secret_value(
            SecretId=settings.admin_key_secret, SecretString=keep["admin_key"]
        )
    secret = secrets_manager_getter()
    auth = Authenticator(
        store.tenants, secret, admin_key_secret=settings.admin_key_secret, key_hash_secret=settings.key_hash_secret
    )
    if keep:
        tenant = TenantRecord(id=keep["tenant_id"], name="demo", created_at=int(time.time()))
        store.tenants.put(tenant)
        api_key = keep["api_key"]
        # Hashed under this stack's own key-hash secret, as issue_key hashes a new key.
        store.tenants.put_api_key(
            ApiKeyRecord(
                id=ids.api_key_id(), tenant_id=tenant.id, key_hash=auth.hash_key(api_key), created_at=int(time.time())
            )
        )
    else:
        tenant, _, api_key = create_tenant(store, auth, "demo")
    job = JobRecord(
        id=keep["job_id"] if keep else ids.job_id(),
        tenant_id=tenant.id,
        model=model,
        provider=MockProvider(type="mock", latency_ms=5),
        use_case="demo batches on the mock provider",
        sla=Sla(completion_window="unlimited", max_concurrency=50),
        allowed_endpoints=list(ENDPOINTS),
        price_1m_tokens=0.2,
        # What code written for OpenAI puts in its lines; the mock answers as `model` whatever they name.
        model_aliases=list(DEMO_ALIASES),
        created_at=int(time.time()),
    )
    store.jobs.put(job)
    # The demo tenant's batches run on it without naming it, as code written for OpenAI creates them.
    store.tenants.update(tenant.id, fields={"default_job_id": job.id})
    return {
        "admin_key": secret(settings.admin_key_secret),
        "api_key": api_key,
        "tenant_id": tenant.id,
        "job_id": job.id,
    }


def seed_demo_data(state_file: Path | None = None) -> dict[str, str]:
    """Demo tenant, API key and job, once the stack is deployed and its functions' environment applied.

    With a state file: the ones it names (written by an earlier run), else new ones, which it then keeps.
    """
    keep = json.loads(state_file.read_text()) if state_file is not None and state_file.exists() else None
    # ApiSettings reads the api function's variables, which are in os.environ by now.
    seeded = seed_demo(ApiSettings(), keep=keep)
    if state_file is not None and seeded != keep:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        written = state_file.with_suffix(".tmp")
        # Keys: readable by their owner only, and replaced whole (a crash never leaves half a file).
        written.touch(mode=0o600)
        written.write_text(json.dumps(seeded, indent=2) + "\n")
        written.replace(state_file)
    return seeded
