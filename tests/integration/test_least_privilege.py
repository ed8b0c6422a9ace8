"""Every permission in template.yaml is needed: remove one from a copy and the function it belongs to fails.

Each function has a scenario that does its job through its real handler, held to its role (localcloud.iam) as
the translated template defines it. With the template as it is, every scenario succeeds. With one permission
taken out of a copy of the template (a SAM policy template, or one statement of an inline policy), the scenario
of that function must fail, and fail because a call was denied: so no permission is dead weight, and the local
cloud would catch the day a needed one goes missing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from fastapi.testclient import TestClient

from batchline.config import ApiSettings
from batchline.models import JobRecord, OpenAIProvider
from batchline.planning import plan
from batchline.store import Store
from localcloud import iam
from localcloud.packaging import inline_definitions
from localcloud.sam import to_cloudformation
from localcloud.template import load_template
from tests.fakes.openai_server import FakeOpenAI
from tests.integration import stack as stack_module
from tests.integration.conftest import ROOT, Tenant, batch_of, load_function
from tests.integration.test_ingest import s3_event

URL = "/v1/chat/completions"
PROVIDER_SECRET = "batchline/least-privilege-test"
# Permissions no scenario here can exercise, and why; each is still checked by the local cloud when used.
NOT_EXERCISED = {
    (
        "WorkerFunction",
        "bedrock:InvokeModel,bedrock:Converse",
    ): "needs a Bedrock backend: the Bedrock provider is tested with Stubber",
}


def line(i: int) -> bytes:
    body = {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": URL,
        "body": {"messages": [{"role": "user", "content": f"{i}"}]},
    }
    return json.dumps(body).encode() + b"\n"


# ----------------------------------------------------------------------------------- template copies
def sam_template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def translate(sam: dict[str, Any]) -> dict[str, Any]:
    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        for prop in ("CodeUri", "ContentUri"):
            if isinstance(props.get(prop), str):
                props[prop] = "s3://localcloud-offline/code.zip"
    inline_definitions(sam, ROOT)
    return to_cloudformation(sam)


def permission_units(sam: dict[str, Any]) -> list[tuple[str, int, int | None, str]]:
    """(function, policy index, statement index or None for a whole SAM policy template, label)."""
    units = []
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for p, policy in enumerate(resource["Properties"].get("Policies", [])):
            if isinstance(policy, dict) and "Statement" in policy:
                for s, statement in enumerate(policy["Statement"]):
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    units.append((logical_id, p, s, ",".join(actions)))
            else:
                name = policy if isinstance(policy, str) else next(iter(policy))
                units.append((logical_id, p, None, name))
    return units


def without(sam: dict[str, Any], function: str, policy: int, statement: int | None) -> dict[str, Any]:
    edited = copy.deepcopy(sam)
    policies = edited["Resources"][function]["Properties"]["Policies"]
    if statement is None:
        del policies[policy]
    else:
        del policies[policy]["Statement"][statement]
        if not policies[policy]["Statement"]:
            del policies[policy]
    return edited


UNITS = permission_units(sam_template())


# ------------------------------------------------------------------------------------------ scenarios
class Denials(logging.Handler):
    """Collects localcloud.iam's 'denied' log lines: proof that a failure was a refused permission."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("denied "):
            self.seen.append(record.getMessage())


@pytest.fixture
def denials() -> Iterator[Denials]:
    handler = Denials()
    logger = logging.getLogger("localcloud.iam")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture
def world(settings: ApiSettings, store: Store, tenant: Tenant) -> Iterator[dict[str, Any]]:
    """What the scenarios share: a state machine to start, a provider secret, a loopback OpenAI server."""
    # A secret cached by an earlier test would hide a GetSecretValue this one's role may not make.
    parameters.clear_caches()
    boto3.client("stepfunctions").create_state_machine(
        name=stack_module.STATE_MACHINE_ARN.rsplit(":", 1)[-1],
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{iam.ACCOUNT_ID}:role/batchline-batch",
    )
    boto3.client("secretsmanager").create_secret(Name=PROVIDER_SECRET, SecretString="sk-upstream")
    with FakeOpenAI() as fake:
        job = JobRecord(
            id="job-upstream",
            tenant_id=tenant.id,
            model="served-model",
            provider=OpenAIProvider(type="openai", base_url=fake.base_url, api_key_secret=PROVIDER_SECRET),
            allowed_endpoints=[URL],
            price_1m_tokens=1,
            created_at=0,
        )
        store.jobs.put(job)
        yield {"fake": fake, "job": job}


def a_batch(store: Store, tenant: Tenant, job: JobRecord, lines: int = 3) -> Any:
    return batch_of(store, tenant, b"".join(line(i) for i in range(lines)), job_id=job.id)


def succeeded(result: Any) -> dict[str, Any]:
    assert not result.errored, result.payload
    return json.loads(result.payload)  # type: ignore[no-any-return]


def run_api(stack: stack_module.Stack, settings: ApiSettings, store: Store, tenant: Tenant, world: dict) -> None:
    """Files, uploads, batches, jobs and keys through the real dependencies, as ApiFunction."""
    module = load_function("api")
    deps = sys.modules["routes.deps"]
    saved = dict(os.environ)
    # The api function's own variables and dependencies, as the template gives them.
    os.environ.update(stack.functions["ApiFunction"].environment)
    cached = (deps.get_settings, deps.get_store, deps.get_authenticator, deps.get_idempotency, deps.get_runs)
    for dependency in cached:
        dependency.cache_clear()
    admin = {"Authorization": "Bearer admin-secret-key-for-tests"}
    try:
        with TestClient(
            iam.ServedAs(module.app, stack.principals["ApiFunction"]), raise_server_exceptions=False
        ) as api:
            created = api.post("/v1/admin/tenants", headers=admin, json={"name": "lp"})
            assert created.status_code == 200, created.text
            headers = {"Authorization": f"Bearer {tenant.key}"}
            upload = api.post(
                "/v1/files", headers=headers, files={"file": ("in.jsonl", line(0) + line(1))}, data={"purpose": "batch"}
            )
            assert upload.status_code == 200, upload.text
            file_id = upload.json()["id"]
            assert api.get(f"/v1/files/{file_id}/content", headers=headers).status_code == 200
            body = {"input_file_id": file_id, "endpoint": URL, "completion_window": "24h", "job_id": world["job"].id}
            batch = api.post("/v1/batches", headers={**headers, "Idempotency-Key": "lp-1"}, json=body)
            assert batch.status_code == 200, batch.text
            # Planned (unchecked: plan is not the api), its partial results read the manifest under work/.
            plan(store, batch.json()["id"], lines_per_chunk=1, requests_per_worker=1_000)
            partial = api.get(f"/v1/batches/{batch.json()['id']}/partial_results", headers=headers)
            assert partial.status_code == 200, partial.text
            staged = api.post(
                "/v1/uploads",
                headers=headers,
                json={"bytes": 3, "filename": "u.jsonl", "mime_type": "application/jsonl", "purpose": "batch"},
            )
            assert staged.status_code == 200, staged.text
            # Two parts, completed in another order than they came: the chain of the first order is no use,
            # so completion lists the staged parts and joins them.
            parts = [
                api.post(f"/v1/uploads/{staged.json()['id']}/parts", headers=headers, files={"data": ("blob", data)})
                for data in (b"c", b"ab")
            ]
            assert all(part.status_code == 200 for part in parts), [part.text for part in parts]
            done = api.post(
                f"/v1/uploads/{staged.json()['id']}/complete",
                headers=headers,
                json={"part_ids": [parts[1].json()["id"], parts[0].json()["id"]]},
            )
            assert done.status_code == 200, done.text
            presigned = api.post(
                "/v1/uploads",
                headers=headers,
                json={"bytes": 3, "filename": "p.jsonl", "mime_type": "application/jsonl", "purpose": "batch"},
            )
            url = api.post(f"/v1/uploads/{presigned.json()['id']}/presigned_url", headers=headers, json={})
            assert url.status_code == 200, url.text
            assert api.delete(f"/v1/files/{done.json()['file']['id']}", headers=headers).status_code == 200
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for dependency in cached:
            dependency.cache_clear()


def run_plan_worker_finalize(function: str) -> Callable[..., None]:
    def run(stack: stack_module.Stack, settings: ApiSettings, store: Store, tenant: Tenant, world: dict) -> None:
        batch = a_batch(store, tenant, world["job"])
        # The other steps run unchecked: only the role of `function` is under test.
        unchecked = {k: dataclasses.replace(f, principal=None) for k, f in stack.functions.items()}
        others = stack_module.Stack(stack.cfn, unchecked, stack.principals)

        def runner(name: str) -> stack_module.Stack:
            return stack if name == function else others

        planned = succeeded(runner("PlanFunction").invoke("PlanFunction", {"batch_id": batch.id}))
        assert planned["status"] == "in_progress", planned
        manifest = json.loads(b"".join(store.objects.stream(planned["manifest_key"])))
        for chunk in manifest:
            progress = {"cursor": 0, "offset": None, "done": False}
            while not progress["done"]:
                # As the state machine sends it: the job the plan named, and where the last invocation stopped.
                event = {"batch_id": batch.id, "job_id": planned["job_id"], "chunk": chunk,
                         "cursor": progress["cursor"], "offset": progress["offset"]}  # fmt: skip
                progress = succeeded(runner("WorkerFunction").invoke("WorkerFunction", event))
        ended = succeeded(runner("FinalizeFunction").invoke("FinalizeFunction", {"batch_id": batch.id, "fault": None}))
        assert ended["status"] == "completed", ended
        assert store.batches.get_unscoped(batch.id).request_counts.completed == 3
        # Plan counted the lines on the tenant's item and finalize took them off: both roles allow it.
        assert store.batches.get_unscoped(batch.id).enqueued == 3
        assert (store._table.get("tenant", tenant.id) or {}).get("enqueued") == 0

    return run


def run_ingest(stack: stack_module.Stack, settings: ApiSettings, store: Store, tenant: Tenant, world: dict) -> None:
    key = f"inbox/{world['job'].id}/nightly.jsonl"
    put = boto3.client("s3").put_object(Bucket=settings.bucket_name, Key=key, Body=line(0))
    answer = succeeded(stack.invoke("IngestFunction", s3_event(settings.bucket_name, key, put)))
    assert answer == {"batchItemFailures": []}
    listed = boto3.client("stepfunctions").list_executions(stateMachineArn=stack_module.STATE_MACHINE_ARN)
    assert len(listed["executions"]) == 1


def run_sweeper(stack: stack_module.Stack, settings: ApiSettings, store: Store, tenant: Tenant, world: dict) -> None:
    event = json.loads((ROOT / "events" / "sweeper_ttl_remove.json").read_text())
    key = event["Records"][0]["dynamodb"]["OldImage"]["s3_key"]["S"]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=settings.bucket_name, Key=key, Body=b"x")
    assert succeeded(stack.invoke("SweeperFunction", event)) == {"batchItemFailures": []}
    assert "Contents" not in s3.list_objects_v2(Bucket=settings.bucket_name, Prefix=key)


SCENARIOS: dict[str, Callable[..., None]] = {
    "ApiFunction": run_api,
    "PlanFunction": run_plan_worker_finalize("PlanFunction"),
    "WorkerFunction": run_plan_worker_finalize("WorkerFunction"),
    "FinalizeFunction": run_plan_worker_finalize("FinalizeFunction"),
    "IngestFunction": run_ingest,
    "SweeperFunction": run_sweeper,
}


# ---------------------------------------------------------------------------------------------- tests
def test_every_function_has_a_scenario_and_every_permission_is_tried() -> None:
    functions = {unit[0] for unit in UNITS}
    assert functions == set(SCENARIOS)
    assert set(NOT_EXERCISED) <= {(unit[0], unit[3]) for unit in UNITS}


@pytest.mark.parametrize("function", sorted(SCENARIOS))
def test_with_the_template_as_it_is_each_function_does_its_job(
    function: str, settings: ApiSettings, store: Store, tenant: Tenant, world: dict, secret_arns: dict, denials: Denials
) -> None:
    stack = stack_module.build(translate(sam_template()), secret_arns)
    SCENARIOS[function](stack, settings, store, tenant, world)
    assert denials.seen == []


@pytest.mark.parametrize(
    ("function", "policy", "statement", "label"),
    [u for u in UNITS if (u[0], u[3]) not in NOT_EXERCISED],
    ids=[f"{u[0]}-{u[1]}.{u[2]}-{u[3]}" for u in UNITS if (u[0], u[3]) not in NOT_EXERCISED],
)
def test_without_any_one_permission_its_function_fails(
    function: str,
    policy: int,
    statement: int | None,
    label: str,
    settings: ApiSettings,
    store: Store,
    tenant: Tenant,
    world: dict,
    secret_arns: dict,
    denials: Denials,
) -> None:
    stack = stack_module.build(translate(without(sam_template(), function, policy, statement)), secret_arns)
    with pytest.raises(AssertionError):
        SCENARIOS[function](stack, settings, store, tenant, world)
    assert any(function in seen for seen in denials.seen), f"{function} failed, but not for a refused {label}"
