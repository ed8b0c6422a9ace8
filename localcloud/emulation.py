"""The emulation wired into this process: every patch the local cloud needs, in order, and undone on stop.

Before the deploy: Lambda runs in-process, Step Functions at the configured scales, moto's fixes, DynamoDB's
capacity meter, S3's signatures and CloudFormation's failures. After it: the functions' environments and
modules, then IAM and fault injection, which must not judge the local cloud's own set-up calls.
"""

from __future__ import annotations

import contextlib

from localcloud import (
    capacity,
    cloudformation,
    faults,
    iam,
    lambdas,
    metering,
    moto_fixes,
    signatures,
    stepfunctions,
)
from localcloud.deploy import DeployedStack
from localcloud.environment import FAKE_CREDENTIALS


def install(meter: capacity.Meter, *, account_concurrency: int, retry_interval_scale: float, wait_scale: float) -> None:
    """Patch in what the deploy already needs; `meter` counts DynamoDB's capacity from here, from zero."""
    # Whatever an earlier cloud (or test) in this process imported and cached starts cold.
    lambdas.forget_modules()
    lambdas.install()
    lambdas.limits.reset(account_concurrency)
    stepfunctions.install(retry_interval_scale=retry_interval_scale, wait_scale=wait_scale)
    moto_fixes.install()
    meter.reset()
    capacity.attach(meter)
    metering.meter_dynamodb(meter)
    # S3 checks presigned URLs and refuses the anonymous: moto's server does neither.
    signatures.install({FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})
    cloudformation.install()


def load_functions(stack: DeployedStack, api_function: str) -> None:
    """Every function's environment into os.environ (the api function's last, so its own win) and its module loaded."""
    for logical_id in sorted(stack.functions, key=lambda name: name == api_function):
        function = stack.functions[logical_id]
        lambdas.apply_environment(function.environment)
        # Seeding imports the core from the layer, as the functions do.
        lambdas.extend_sys_path(lambdas.layer_search_path(function))
    for function in stack.functions.values():
        # Imported here, in one thread, not first in moto's request threads next to the caller's
        # own imports (see localcloud.preload). One that cannot be imported fails when invoked, as in Lambda.
        with contextlib.suppress(lambdas.HandlerError, ImportError):
            lambdas.load_function_module(function)
    api = stack.functions.get(api_function)
    if api is not None:
        lambdas.apply_environment(api.environment)


def enforce_iam(stack: DeployedStack) -> None:
    """From here on every function's AWS calls are checked against its own role (localcloud.iam)."""
    owned = [f.arn for f in stack.functions.values()]
    owned += [
        f"arn:aws:s3:::{name}"
        for logical_id, name in stack.resources.items()
        if stack.resource_types[logical_id] == "AWS::S3::Bucket"
    ]
    for logical_id, principal in stack.principals.items():
        if stack.resource_types.get(logical_id) == "AWS::StepFunctions::StateMachine":
            iam.register_state_machine(principal, owned)
    iam.install()
    faults.install()


def uninstall(meter: capacity.Meter) -> None:
    """Undo every patch, whichever were made (idempotent); `meter` is detached, its counts kept."""
    lambdas.uninstall()
    # Clients cached by the functions point at this cloud's moto: none may outlive it.
    lambdas.forget_modules()
    iam.uninstall()
    faults.uninstall()
    stepfunctions.uninstall()
    signatures.uninstall()
    moto_fixes.uninstall()
    metering.meter_dynamodb(None)
    capacity.detach(meter)
    cloudformation.uninstall()
