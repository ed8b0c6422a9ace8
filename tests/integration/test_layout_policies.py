"""batchline.layout's table of who does what under which prefix, held against the policies in template.yaml.

Both ways: every (function, access, prefix) the table lists is allowed by that function's role as the
translated template defines it, and a role allows nothing under the bucket's prefixes that the table does not
list. Taking one listed permission out of a copy of the template, or adding one the table does not list,
makes the check fail: a prefix and its permissions cannot drift apart.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from batchline import layout
from localcloud import iam
from localcloud.template import load_template
from tests.integration import stack as stack_module
from tests.integration.conftest import ROOT
from tests.integration.test_least_privilege import translate

BUCKET = stack_module.PHYSICAL["FilesBucket"]
BUCKET_ARN = {"Fn::GetAtt": ["FilesBucket", "Arn"]}
# Secrets are resolved only to build the roles: no call is made here.
SECRETS = {
    "AdminKeySecret": f"arn:aws:secretsmanager:us-east-1:{iam.ACCOUNT_ID}:secret:admin-key-AbCdEf",
    "KeyHashSecret": f"arn:aws:secretsmanager:us-east-1:{iam.ACCOUNT_ID}:secret:key-hash-AbCdEf",
}
IAM_ACTION: dict[str, str] = {
    "read": "s3:GetObject",
    "read_version": "s3:GetObjectVersion",
    "write": "s3:PutObject",
    "abort_multipart": "s3:AbortMultipartUpload",
    "delete": "s3:DeleteObject",
    "list": "s3:ListBucket",
}
# Roles whose ListBucket has no s3:prefix condition, and why: IAM cannot narrow it to a prefix and still let a
# GetObject of a missing key answer NoSuchKey (S3 asks for ListBucket on the bucket, with no s3:prefix).
BUCKET_WIDE_LIST = {"FinalizeFunction": "a part or file it reads may be gone; it must see NoSuchKey"}


def sam_template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def principals(sam: Mapping[str, Any]) -> Mapping[str, iam.Principal]:
    return stack_module.build(translate(dict(sam)), SECRETS).principals


def request(access: str, prefix: str) -> iam.Request:
    sample = f"{prefix}tenant-sample/object-sample"
    if access == "list":
        return iam.Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{sample}/"})
    return iam.Request(IAM_ACTION[access], f"arn:aws:s3:::{BUCKET}/{sample}")


def missing(roles: Mapping[str, iam.Principal]) -> list[tuple[str, str, str]]:
    """Entries of the table the template does not allow."""
    return [
        (function, access, prefix)
        for function, access, prefix in layout.ACCESS
        if function not in roles or not iam.is_allowed(roles[function].statements, request(access, prefix))
    ]


def unlisted(roles: Mapping[str, iam.Principal]) -> list[tuple[str, str, str]]:
    """What the template allows under a prefix that the table does not list."""
    listed = set(layout.ACCESS)
    found = []
    for function, role in roles.items():
        for access in IAM_ACTION:
            if access == "list" and function in BUCKET_WIDE_LIST:
                continue
            for prefix in layout.PREFIXES:
                entry = (function, access, prefix)
                if entry not in listed and iam.is_allowed(role.statements, request(access, prefix)):
                    found.append(entry)
    return found


def _grants(resource: Any, access: str, prefix: str) -> bool:
    if access == "list":
        return bool(resource == BUCKET_ARN)
    return bool(resource == {"Fn::Sub": f"${{FilesBucket.Arn}}/{prefix}*"})


def without(sam: Mapping[str, Any], function: str, access: str, prefix: str) -> dict[str, Any]:
    """A template copy where `function` may no longer do `access` under `prefix`, and nothing else changes."""
    edited = copy.deepcopy(dict(sam))
    action = IAM_ACTION[access]
    for policy in edited["Resources"][function]["Properties"]["Policies"]:
        if not (isinstance(policy, dict) and "Statement" in policy):
            continue
        statements = []
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            kept = [r for r in resources if not _grants(r, access, prefix)]
            if action not in actions or len(kept) == len(resources):
                statements.append(statement)
                continue
            # The other actions keep every resource; this action keeps all but the prefix's.
            others = [a for a in actions if a != action]
            if others:
                statements.append({**statement, "Action": others})
            if kept:
                statements.append({**statement, "Action": action, "Resource": kept})
        policy["Statement"] = statements
    return edited


def with_extra(sam: Mapping[str, Any], function: str, access: str, prefix: str) -> dict[str, Any]:
    edited = copy.deepcopy(dict(sam))
    resource = BUCKET_ARN if access == "list" else {"Fn::Sub": f"${{FilesBucket.Arn}}/{prefix}*"}
    statement = {"Effect": "Allow", "Action": IAM_ACTION[access], "Resource": resource}
    edited["Resources"][function]["Properties"]["Policies"].append({"Statement": [statement]})
    return edited


def _bucket_prefixes(value: Any) -> set[str]:
    """Every prefix a `${FilesBucket.Arn}/<prefix>*` resource of the template names."""
    if isinstance(value, dict):
        return set().union(*(_bucket_prefixes(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_bucket_prefixes(v) for v in value)) if value else set()
    if isinstance(value, str) and value.startswith("${FilesBucket.Arn}/"):
        return {value.removeprefix("${FilesBucket.Arn}/").removesuffix("*")}
    return set()


# ---------------------------------------------------------------------------------------------- tests
def test_the_template_allows_every_entry_of_the_table_and_nothing_else_under_the_prefixes() -> None:
    roles = principals(sam_template())
    assert missing(roles) == []
    assert unlisted(roles) == []


def test_the_template_names_no_prefix_the_layout_does_not() -> None:
    sam = sam_template()
    bucket = sam["Resources"]["FilesBucket"]["Properties"]
    named = {p for p in _bucket_prefixes(sam["Resources"]) if p}
    named |= {rule["Prefix"] for rule in bucket["LifecycleConfiguration"]["Rules"] if "Prefix" in rule}
    for queue in bucket["NotificationConfiguration"]["QueueConfigurations"]:
        rules = queue["Filter"]["S3Key"]["Rules"]
        named |= {r["Value"] for r in rules if r["Name"] == "prefix"}
        assert {r["Value"] for r in rules if r["Name"] == "suffix"} == {layout.INBOX_SUFFIX}
    assert named <= set(layout.PREFIXES)
    # The inbox's events and the expiry of staged uploads and batch work hang on these names.
    assert {layout.INBOX, layout.UPLOADS, layout.WORK} <= named


def test_every_prefix_but_the_inbox_has_a_writer_in_the_table() -> None:
    writers = {prefix for _, access, prefix in layout.ACCESS if access == "write"}
    # The inbox is written by clients, not by a function of the stack.
    assert writers == set(layout.PREFIXES) - {layout.INBOX}
    assert set(BUCKET_WIDE_LIST) <= {f for f, access, _ in layout.ACCESS if access == "list"}


@pytest.mark.parametrize(("function", "access", "prefix"), layout.ACCESS, ids=["-".join(e) for e in layout.ACCESS])
def test_without_a_listed_permission_the_check_fails(function: str, access: str, prefix: str) -> None:
    roles = principals(without(sam_template(), function, access, prefix))
    assert (function, access, prefix) in missing(roles)
    # Only that permission went: the rest of the table still holds.
    others = [e for e in missing(roles) if e[0] != function or e[1] != access]
    assert others == []


@pytest.mark.parametrize(
    ("function", "access", "prefix"),
    [("ApiFunction", "write", layout.WORK), ("SweeperFunction", "delete", layout.UPLOADS)],
)
def test_a_permission_the_table_does_not_list_fails_the_check(function: str, access: str, prefix: str) -> None:
    roles = principals(with_extra(sam_template(), function, access, prefix))
    assert unlisted(roles) == [(function, access, prefix)]


@pytest.mark.parametrize(
    "model_id",
    [
        "amazon.nova-lite-v1:0",  # a foundation model, in the job's region
        "eu.anthropic.claude-3-haiku-20240307-v1:0",  # a cross-region inference profile
        "apac.amazon.nova-micro-v1:0",
        f"arn:aws:bedrock:ap-southeast-2:{iam.ACCOUNT_ID}:application-inference-profile/abc123",
    ],
)
def test_the_worker_may_invoke_bedrock_models_and_inference_profiles_of_any_region(model_id: str) -> None:
    # A job's provider.region may be any region, not the stack's: its profiles are the account's there.
    worker = principals(sam_template())["WorkerFunction"]
    for region in ("eu-west-1", "ap-southeast-2"):
        (asked,) = iam.requests_for("bedrock-runtime", "Converse", {"modelId": model_id}, region)
        assert iam.is_allowed(worker.statements, asked), (model_id, region)
