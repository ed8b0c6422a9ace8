"""What template.yaml must keep true for every stack name CloudFormation accepts (make check runs these)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from localcloud.intrinsics import STACK_NAME, Stack
from localcloud.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(k for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function")
STATE_MACHINES = sorted(k for k, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::StateMachine")

# Short, long, mixed case, trailing hyphen, digits: the corners of CloudFormation's stack name rule.
STACK_NAMES = [
    "batchline",
    "b",
    "Batchline-Prod",
    "UPPER",
    "a1-2-3",
    "ends-with-",
    "x" * 128,
    "Ab-" * 42 + "cd",
]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "ap-southeast-5", "mx-central-1"]


def test_the_sample_stack_names_are_ones_cloudformation_accepts() -> None:
    assert all(STACK_NAME.fullmatch(name) for name in STACK_NAMES)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_every_state_machine_arn_in_a_policy_names_the_stacks_state_machine(stack_name: str) -> None:
    """The state machine cannot refer to itself, so its own policy spells its ARN out: it must agree."""
    stack = Stack(TEMPLATE, name=stack_name)
    names = {stack.get_att(logical_id, "Name") for logical_id in STATE_MACHINES}
    found = 0
    for logical_id, resource in RESOURCES.items():
        for policy in resource.get("Properties", {}).get("Policies") or []:
            if not isinstance(policy, dict):
                continue
            if "StepFunctionsExecutionPolicy" in policy:
                machine = stack.resolve(policy["StepFunctionsExecutionPolicy"]["StateMachineName"])
                assert machine in names, f"{logical_id}: StepFunctionsExecutionPolicy names {machine}"
                found += 1
            for text in _strings(stack.resolve(policy)):
                for match in re.finditer(r"arn:aws:states:[^:]*:[^:]*:(?:stateMachine|execution):([^:/]+)", text):
                    assert match.group(1) in names, f"{logical_id}: {text} names no state machine of the stack"
                    found += 1
    assert found >= 3  # the state machine's own two statements and at least one caller
