"""template.yaml's functions over the moto resources of the integration tests: each one's role and variables.

Integration tests run handlers in-process on moto; this gives a handler the principal (localcloud.iam) and the
environment the deployed stack would give it, resolved from the SAM-translated template itself, so a test that
runs a handler holds it to its own role, and a template whose policy lacks a permission fails that test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud import iam, iam_roles
from localcloud.lambda_code import LocalFunction
from localcloud.lambda_runtime import InvocationResult, invoke

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
STACK_NAME = "batchline"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{iam.ACCOUNT_ID}:stateMachine:{STACK_NAME}-batch"
# Physical names of the resources the integration fixtures create on moto.
PHYSICAL = {
    "Table": "batchline-test",
    "IdempotencyTable": "batchline-idempotency",
    "FilesBucket": "batchline-test-files",
    "BatchStateMachine": STATE_MACHINE_ARN,
}


@dataclass(frozen=True)
class Stack:
    """The template's functions with their roles and variables resolved."""

    cfn: Mapping[str, Any]
    functions: Mapping[str, LocalFunction]
    principals: Mapping[str, iam.Principal]

    def invoke(self, logical_id: str, event: Any) -> InvocationResult:
        """Run a function's handler as the local cloud would: its variables, its role, a Lambda context."""
        saved = dict(os.environ)
        try:
            return invoke(self.functions[logical_id], event)
        finally:
            # The function's variables stay with its invocation, not with the tests after it.
            os.environ.clear()
            os.environ.update(saved)


def _physical_id(logical_id: str, kind: str, secrets: Mapping[str, str]) -> str:
    if logical_id in PHYSICAL:
        return PHYSICAL[logical_id]
    if kind == "AWS::SecretsManager::Secret":
        return secrets[logical_id]
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{iam.ACCOUNT_ID}/{logical_id}"
    return logical_id


def build(cfn: Mapping[str, Any], secrets: Mapping[str, str]) -> Stack:
    """`cfn` is an offline translation of the template; `secrets` maps secret logical ids to their ARNs."""
    resources = cfn.get("Resources", {})
    attributes = {
        logical_id: iam_roles.attributes_of(
            resource["Type"], _physical_id(logical_id, resource["Type"], secrets), region=REGION
        )
        for logical_id, resource in resources.items()
    }
    # As the local cloud deploys it: the tests' fake upstreams listen on loopback.
    pseudo = iam_roles.pseudo_parameters(
        cfn, region=REGION, stack_name=STACK_NAME, parameters={"AllowPrivateBackends": "true"}
    )
    principals = iam_roles.principals_from_template(cfn, attributes, pseudo)
    functions: dict[str, LocalFunction] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        variables = iam_roles.resolve(props.get("Environment", {}).get("Variables", {}), attributes, pseudo)
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=logical_id,
            arn=attributes[logical_id]["Arn"],
            handler=props["Handler"],
            code_dir=ROOT / "functions" / logical_id.removesuffix("Function").lower(),
            environment={key: str(value) for key, value in variables.items()},
            layer_dirs=(ROOT / "layers" / "core",),
            timeout=int(props.get("Timeout", 3)),
            memory_size=int(props.get("MemorySize", 128)),
            principal=principals.get(logical_id),
        )
    return Stack(cfn=cfn, functions=functions, principals=principals)
