"""Create template.yaml as a moto CloudFormation stack and describe what came out of it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from localcloud import bridges, iam, iam_roles, lambdas
from localcloud.lambdas import LocalFunction
from localcloud.rules import RuleFailed, check_rules
from localcloud.template import load_template, replace_references
from localcloud.translation import HIDDEN_OUTPUT_PREFIX, Translation, translate

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]

ARTIFACTS_BUCKET = "localcloud-artifacts"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class DeployError(Exception):
    """The stack did not reach CREATE_COMPLETE."""


@dataclass(frozen=True)
class DeployedStack:
    """A stack created in moto: its outputs, resources and functions with their local code."""

    name: str
    stack_id: str
    status: str
    outputs: dict[str, str]
    # Logical id -> physical id, and logical id -> resource type.
    resources: dict[str, str]
    resource_types: dict[str, str]
    # Lambda functions by logical id.
    functions: dict[str, LocalFunction]
    # State machines by logical id -> ARN in moto's executing Step Functions backend.
    state_machines: dict[str, str] = field(default_factory=dict)
    # The role each function and state machine acts as, by logical id (what localcloud.iam enforces).
    principals: dict[str, iam.Principal] = field(default_factory=dict)
    # Resources created through moto's API instead of its CloudFormation: logical id -> physical id.
    emulated: dict[str, str] = field(default_factory=dict)
    # What was left out (logical id or "Outputs.<key>" -> why) and what kept placeholders.
    removed: dict[str, str] = field(default_factory=dict)
    patched: dict[str, list[str]] = field(default_factory=dict)
    # Environment keys that functions set to different values (see lambdas' module docstring).
    environment_conflicts: dict[str, dict[str, str]] = field(default_factory=dict)
    translation: Translation | None = field(default=None, repr=False, compare=False)

    def physical_id(self, logical_id: str) -> str:
        """The physical id of a resource, created by the stack or emulated."""
        if logical_id in self.resources:
            return self.resources[logical_id]
        return self.emulated[logical_id]

    def function(self, logical_id: str) -> LocalFunction:
        """A Lambda function by logical id."""
        return self.functions[logical_id]


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create a bucket unless it is there already."""
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise


def wait_for_stack(cf: Any, stack_name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll until the stack leaves *_IN_PROGRESS; raise DeployError unless CREATE_COMPLETE."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        stack: dict[str, Any] = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name} still {status} after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    if status != "CREATE_COMPLETE":
        # What failed and why is in the events of the resources that failed, as `sam deploy` shows them.
        events = cf.describe_stack_events(StackName=stack_name)["StackEvents"]
        failed = [
            f"{event['LogicalResourceId']} {event['ResourceStatus']}: {event.get('ResourceStatusReason', '')}"
            for event in events
            if event["ResourceStatus"].endswith("_FAILED")
        ]
        reasons = "; ".join([stack.get("StackStatusReason", ""), *failed]).strip("; ")
        raise DeployError(f"stack {stack_name} ended {status}: {reasons}")
    return stack


def list_resources(cf: Any, stack_name: str) -> list[dict[str, Any]]:
    """The stack's resources (ListStackResources: moto's DescribeStackResources trips on some)."""
    summaries: list[dict[str, Any]] = []
    for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        summaries.extend(page["StackResourceSummaries"])
    return summaries


def _environment_conflicts(functions: Mapping[str, LocalFunction]) -> dict[str, dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for logical_id, function in functions.items():
        for key, value in function.environment.items():
            seen.setdefault(key, {})[logical_id] = value
    return {key: by_fn for key, by_fn in seen.items() if len(set(by_fn.values())) > 1}


def check_parameters(declared: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """Refuse parameter values as CloudFormation does: unknown names, AllowedValues, Min/MaxValue."""
    for name, value in given.items():
        spec = declared.get(name)
        if spec is None:
            raise DeployError(f"Parameters: [{name}] do not exist in the template")
        allowed = spec.get("AllowedValues")
        if allowed is not None and str(value) not in [str(a) for a in allowed]:
            raise DeployError(f"Parameter '{name}' must be one of AllowedValues")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                raise DeployError(f"Parameter '{name}' must be a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise DeployError(f"Parameter '{name}' must be a number not less than {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise DeployError(f"Parameter '{name}' must be a number not greater than {spec['MaxValue']}")


def deploy(
    template_path: Path,
    client: ClientFactory,
    *,
    stack_name: str = "batchline",
    parameters: Mapping[str, str] | None = None,
    artifacts_bucket: str = ARTIFACTS_BUCKET,
    region: str = "us-east-1",
    register: bool = True,
    timeout: float = 60.0,
) -> DeployedStack:
    """Translate, create and read back a stack; register its functions for in-process invocation.

    `client(service)` must answer boto3 clients pointed at the moto server.
    """
    parameters = dict(parameters or {})
    # CloudFormation refuses bad parameters and failing Rules before it creates anything; moto checks neither.
    declared = load_template(Path(template_path))
    check_parameters(declared.get("Parameters", {}), parameters)
    try:
        check_rules(declared, parameters)
    except RuleFailed as exc:
        raise DeployError(str(exc)) from None
    s3 = client("s3")
    ensure_bucket(s3, artifacts_bucket)
    translation = translate(Path(template_path), s3=s3, bucket=artifacts_bucket, parameters=parameters)
    account_id: str = client("sts").get_caller_identity()["Account"]

    created = bridges.create_emulated(
        translation.emulated,
        client,
        stack_name=stack_name,
        parameters=parameters,
        region=region,
        account_id=account_id,
    )
    template = replace_references(translation.template, bridges.emulated_resolvers(created))

    cf = client("cloudformation")
    cf.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
        Capabilities=CAPABILITIES,
    )
    stack = wait_for_stack(cf, stack_name, timeout)
    all_outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    summaries = list_resources(cf, stack_name)
    resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in summaries}
    resource_types = {r["LogicalResourceId"]: r["ResourceType"] for r in summaries}

    attributes = {
        logical_id: iam_roles.attributes_of(resource_types[logical_id], physical_id, region=region, account=account_id)
        for logical_id, physical_id in resources.items()
    }
    pseudo = iam_roles.pseudo_parameters(
        template, region=region, stack_name=stack_name, parameters=parameters, account=account_id
    )
    principals = iam_roles.principals_from_template(template, attributes, pseudo)
    functions = _read_functions(client("lambda"), translation, resources, resource_types, principals)
    if register:
        lambdas.install()
        for function in functions.values():
            lambdas.register(function)

    state_machines: dict[str, str] = {}
    sfn = None
    for key, hidden in translation.hidden_outputs.items():
        value = all_outputs.get(key)
        if value is None:
            log.warning("moto did not resolve %s", key)
        elif hidden.kind == "state_machine":
            sfn = sfn or client("stepfunctions")
            spec = bridges.parse_state_machine(hidden.logical_id, value)
            state_machines[hidden.logical_id] = bridges.register_state_machine(sfn, spec)
        elif hidden.kind == "bucket_notifications":
            bridges.apply_bucket_notifications(s3, value)

    conflicts = _environment_conflicts(functions)
    for key, by_fn in conflicts.items():
        log.warning("functions set %s differently (%s); os.environ holds one at a time", key, by_fn)
    return DeployedStack(
        name=stack_name,
        stack_id=stack["StackId"],
        status=stack["StackStatus"],
        outputs={k: v for k, v in all_outputs.items() if not k.startswith(HIDDEN_OUTPUT_PREFIX)},
        resources=resources,
        resource_types=resource_types,
        functions=functions,
        state_machines=state_machines,
        principals=principals,
        emulated={logical_id: values["Ref"] for logical_id, values in created.items()},
        removed=dict(translation.removed),
        patched=dict(translation.patched),
        environment_conflicts=conflicts,
        translation=translation,
    )


def _read_functions(
    lam: Any,
    translation: Translation,
    resources: Mapping[str, str],
    resource_types: Mapping[str, str],
    principals: Mapping[str, iam.Principal],
) -> dict[str, LocalFunction]:
    functions: dict[str, LocalFunction] = {}
    for logical_id, kind in resource_types.items():
        if kind != "AWS::Lambda::Function":
            continue
        config = lam.get_function_configuration(FunctionName=resources[logical_id])
        variables = config.get("Environment", {}).get("Variables", {})
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            handler=config.get("Handler") or "",
            code_dir=translation.function_code.get(logical_id),
            # Lambda hands every value over as a string; moto keeps numbers as the template had them.
            environment={k: str(v) for k, v in variables.items()},
            layer_dirs=translation.function_layers.get(logical_id, ()),
            timeout=int(config.get("Timeout") or 3),
            memory_size=int(config.get("MemorySize") or 128),
            principal=principals.get(logical_id),
        )
    return functions
