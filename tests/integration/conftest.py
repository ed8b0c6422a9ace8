"""moto-backed fixtures: the stack's table, bucket and secrets built from template.yaml itself."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from batchline import batches, files
from batchline.auth import Authenticator
from batchline.config import ApiSettings
from batchline.idempotency import Idempotency
from batchline.models import ENDPOINTS, BatchCreate, JobRecord, MockProvider
from batchline.secret_values import secrets_manager_getter
from batchline.store import Store
from batchline.tenants import create_tenant
from localcloud import iam, moto_fixes, translation
from localcloud.patching import installed
from localcloud.template import load_template
from tests.integration import stack as stack_module

ROOT = Path(__file__).resolve().parents[2]


def load_function(name: str) -> ModuleType:
    """A function's app.py, imported by path under a name of its own (every function has an app.py)."""
    module_name = f"batchline_fn_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    code_dir = ROOT / "functions" / name
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))  # as Lambda puts the code folder on the path
    spec = importlib.util.spec_from_file_location(module_name, code_dir / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _table_kwargs(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """create_table arguments taken from the template's own table, so tests cannot drift from it."""
    props = template["Resources"][logical_id]["Properties"]
    kwargs = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode")}
    if "GlobalSecondaryIndexes" in props:
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return kwargs


@pytest.fixture(scope="session")
def cfn() -> dict[str, Any]:
    """template.yaml through the SAM transform (its roles and variables; no code packaged)."""
    return translation.offline_translation(ROOT / "template.yaml")


@pytest.fixture
def secret_arns() -> dict[str, str]:
    """The ARNs of the stack's secrets, once `settings` has created them."""
    return {}


@pytest.fixture
def settings(template: dict[str, Any], secret_arns: dict[str, str]) -> Iterator[ApiSettings]:
    """moto with the stack's table, bucket and secrets; every call made as a function is held to its role.

    moto's DynamoDB is serialized as in the local cloud (localcloud.moto_fixes): without it, two threads can
    both pass one conditional write, which DynamoDB never lets happen.
    """
    with mock_aws(), installed(iam, moto_fixes):
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(TableName="batchline-test", **_table_kwargs(template, "Table"))
        dynamodb.create_table(TableName="batchline-idempotency", **_table_kwargs(template, "IdempotencyTable"))
        boto3.client("s3").create_bucket(Bucket="batchline-test-files")
        sm = boto3.client("secretsmanager")
        secret_arns["AdminKeySecret"] = sm.create_secret(Name="admin-key", SecretString="admin-secret-key-for-tests")[
            "ARN"
        ]
        secret_arns["KeyHashSecret"] = sm.create_secret(Name="key-hash", SecretString="hash-key-for-tests")["ARN"]
        yield ApiSettings(
            table_name="batchline-test",
            bucket_name="batchline-test-files",
            admin_key_secret="admin-key",
            key_hash_secret="key-hash",
            idempotency_table="batchline-idempotency",
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:batchline-batch",
            max_upload_bytes=64 * 1024,
            # High enough that no test's requests meet it by chance; test_tenant_limits sets its own.
            requests_per_second=100_000,
            provider_secret_prefix="batchline/",
            allow_private_backends=True,
        )


@pytest.fixture
def stack(cfn: dict[str, Any], settings: ApiSettings, secret_arns: dict[str, str]) -> stack_module.Stack:
    """The template's functions over this test's moto resources, each with its own role."""
    return stack_module.build(cfn, secret_arns)


@pytest.fixture
def store(settings: ApiSettings) -> Store:
    return Store(settings.table_name, settings.bucket_name)


@pytest.fixture
def authenticator(settings: ApiSettings, store: Store) -> Authenticator:
    return Authenticator(
        store.tenants,
        secrets_manager_getter(max_age=0),
        admin_key_secret=settings.admin_key_secret,
        key_hash_secret=settings.key_hash_secret,
    )


class Tenant:
    """A seeded tenant: its id, key and a mock job."""

    def __init__(self, store: Store, auth: Authenticator, name: str) -> None:
        tenant, _, self.key = create_tenant(store, auth, name)
        self.id = tenant.id
        self.job = JobRecord(
            id=f"job-{name[:8]}",
            tenant_id=tenant.id,
            model="mock-model",
            provider=MockProvider(type="mock"),
            allowed_endpoints=["/v1/chat/completions", "/v1/embeddings"],
            price_1m_tokens=0.5,
            created_at=0,
        )
        store.jobs.put(self.job)
        self.headers = {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def tenant(store: Store, authenticator: Authenticator) -> Tenant:
    return Tenant(store, authenticator, "alpha")


@pytest.fixture
def other_tenant(store: Store, authenticator: Authenticator) -> Tenant:
    return Tenant(store, authenticator, "bravo")


class RecordedRuns:
    """Runs that records which batches it started instead of starting executions."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, batch_id: str) -> None:
        self.started.append(batch_id)


@pytest.fixture
def runs() -> RecordedRuns:
    return RecordedRuns()


@pytest.fixture
def api(
    settings: ApiSettings,
    store: Store,
    authenticator: Authenticator,
    runs: RecordedRuns,
    stack: stack_module.Stack,
) -> Iterator[TestClient]:
    """The api function's app with the moto-backed dependencies injected, served under the api function's role."""
    module = load_function("api")
    deps = sys.modules["routes.deps"]
    module.app.dependency_overrides.update(
        {
            deps.get_settings: lambda: settings,
            deps.get_store: lambda: store,
            deps.get_authenticator: lambda: authenticator,
            deps.get_idempotency: lambda: Idempotency(settings.idempotency_table),
            deps.get_runs: lambda: runs,
        }
    )
    try:
        served = iam.ServedAs(module.app, stack.principals["ApiFunction"])
        with TestClient(served, raise_server_exceptions=False) as client:
            yield client
    finally:
        module.app.dependency_overrides.clear()


def batch_of(store: Store, tenant: Tenant, data: bytes, *, job_id: str, endpoint: str = "/v1/chat/completions") -> Any:
    """A batch over a new input file holding `data`, created as the API creates it (its run not started)."""
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create = BatchCreate(input_file_id=record.id, endpoint=endpoint, completion_window="24h", job_id=job_id)
    return batches.create_batch(store, RecordedRuns(), tenant.id, create)


def all_items(settings: ApiSettings) -> list[dict[str, Any]]:
    """The table's objects; the request-rate windows every tenant request counts in are left out."""
    items = boto3.resource("dynamodb").Table(settings.table_name).scan()["Items"]
    return [item for item in items if item.get("sk") != "rate"]


__all__ = ["ENDPOINTS", "Tenant", "all_items", "load_function"]
