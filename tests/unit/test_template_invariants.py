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


# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (general purpose buckets)
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why S3 (or TLS on its virtual-hosted endpoint) would refuse this bucket name; None if it is fine."""
    if not BUCKET_NAME.fullmatch(name):
        return "3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if name.startswith(BUCKET_PREFIXES) or name.endswith(BUCKET_SUFFIXES):
        return "a reserved prefix or suffix"
    if "." in name:
        return "a dot breaks TLS on the virtual-hosted endpoint presigned URLs use"
    return None


def test_the_bucket_name_rule_refuses_what_s3_refuses() -> None:
    for bad in ("ab", "Batchline-123", "a" * 64, "-a1", "a1-", "xn--a1", "a.b", "a_b"):
        assert bucket_name_problem(bad) is not None, bad
    assert bucket_name_problem("batchline-123456789012-us-east-1") is None


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_the_bucket_name_is_valid_for_every_stack_name_cloudformation_accepts(stack_name: str, region: str) -> None:
    stack = Stack(TEMPLATE, name=stack_name, region=region)
    name = stack.ref("FilesBucket")
    assert bucket_name_problem(name) is None, f"stack {stack_name} in {region}: {name}"


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_the_inbox_queue_accepts_events_from_the_stacks_own_bucket(stack_name: str) -> None:
    """The queue policy exists before the bucket, so it spells the bucket's ARN out: it must agree."""
    stack = Stack(TEMPLATE, name=stack_name)
    (statement,) = stack.resolve(RESOURCES["InboxQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"])
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == stack.get_att("FilesBucket", "Arn")


def test_a_versioned_bucket_is_retained_so_stack_delete_can_finish() -> None:
    """CloudFormation cannot delete a bucket that still holds object versions: the stack delete would fail."""
    bucket = RESOURCES["FilesBucket"]
    if bucket["Properties"].get("VersioningConfiguration", {}).get("Status") == "Enabled":
        assert (bucket.get("DeletionPolicy"), bucket.get("UpdateReplacePolicy")) == ("Retain", "Retain")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_logs_to_a_log_group_of_the_stack_with_retention(function: str) -> None:
    stack = Stack(TEMPLATE)
    expected = f"/aws/lambda/{stack.ref(function)}"
    groups = {
        logical_id: resource
        for logical_id, resource in RESOURCES.items()
        if resource["Type"] == "AWS::Logs::LogGroup"
        and stack.resolve(resource.get("Properties", {}).get("LogGroupName")) == expected
    }
    assert len(groups) == 1, f"{function}: no log group named {expected}"
    (props,) = (resource["Properties"] for resource in groups.values())
    assert int(stack.resolve(props["RetentionInDays"])) > 0
