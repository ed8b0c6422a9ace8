"""Principals from the template: each function's and state machine's role, its policies resolved to literals.

Principals come from the SAM-translated template itself (`principals_from_template`), with the stack's physical
names substituted (`attributes_of`, `pseudo_parameters`, `resolve`), so a policy edited in template.yaml is the
policy enforced.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

from localcloud.iam import Principal
from localcloud.iam_policy import ACCOUNT_ID

log = logging.getLogger(__name__)

Attributes = Mapping[str, Mapping[str, str]]
"""Logical id -> {"Ref": physical id, "Arn": ..., "Name": ...}: what a template's intrinsics resolve to."""


def attributes_of(kind: str, physical_id: str, *, region: str, account: str = ACCOUNT_ID) -> dict[str, str]:
    """Ref and GetAtt values of a resource, as CloudFormation gives them for its type."""
    values = {"Ref": physical_id}
    if kind == "AWS::DynamoDB::Table":
        values["Arn"] = f"arn:aws:dynamodb:{region}:{account}:table/{physical_id}"
        values["StreamArn"] = f"{values['Arn']}/stream/*"
    elif kind == "AWS::S3::Bucket":
        values["Arn"] = f"arn:aws:s3:::{physical_id}"
    elif kind == "AWS::Lambda::Function":
        values["Arn"] = f"arn:aws:lambda:{region}:{account}:function:{physical_id}"
    elif kind == "AWS::StepFunctions::StateMachine":
        values.update(Arn=physical_id, Name=physical_id.rsplit(":", 1)[-1])
    elif kind == "AWS::SQS::Queue":
        name = physical_id.rstrip("/").rsplit("/", 1)[-1]
        values.update(Arn=f"arn:aws:sqs:{region}:{account}:{name}", QueueName=name, QueueUrl=physical_id)
    elif kind == "AWS::SecretsManager::Secret":
        values["Id"] = physical_id
    elif kind == "AWS::IAM::Role":
        values["Arn"] = f"arn:aws:iam::{account}:role/{physical_id}"
    elif kind == "AWS::Logs::LogGroup":
        values["Arn"] = f"arn:aws:logs:{region}:{account}:log-group:{physical_id}:*"
    return values


def resolve(value: Any, attributes: Attributes, pseudo: Mapping[str, str]) -> Any:
    """A template fragment with Ref, GetAtt, Sub and Join resolved to literals."""
    if isinstance(value, list):
        return [resolve(v, attributes, pseudo) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, operand),) = value.items()
        if key == "Ref":
            return pseudo[operand] if operand in pseudo else attributes[operand]["Ref"]
        if key == "Fn::GetAtt":
            name, attribute = operand.split(".", 1) if isinstance(operand, str) else operand
            return attributes[name][attribute]
        if key == "Fn::Sub":
            text, variables = (operand, {}) if isinstance(operand, str) else operand
            bound = {k: resolve(v, attributes, pseudo) for k, v in variables.items()}

            def token(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in bound:
                    return str(bound[name])
                if name in pseudo:
                    return pseudo[name]
                logical, _, attribute = name.partition(".")
                return attributes[logical][attribute or "Ref"]

            return re.sub(r"\$\{([^!}][^}]*)\}", token, text).replace("${!", "${")
        if key == "Fn::Join":
            separator, parts = operand
            return separator.join(str(p) for p in resolve(parts, attributes, pseudo))
    return {k: resolve(v, attributes, pseudo) for k, v in value.items()}


def _role_statements(
    role: Mapping[str, Any], attributes: Attributes, pseudo: Mapping[str, str]
) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        document = resolve(copy.deepcopy(policy["PolicyDocument"]), attributes, pseudo)
        statement = document.get("Statement", [])
        statements.extend(statement if isinstance(statement, list) else [statement])
    # The AWS managed policies SAM attaches (logs, X-Ray) grant nothing the functions call through boto3.
    return statements


def pseudo_parameters(
    cfn: Mapping[str, Any],
    *,
    region: str,
    stack_name: str,
    parameters: Mapping[str, str] | None = None,
    account: str = ACCOUNT_ID,
) -> dict[str, str]:
    """What `Ref` of a parameter (given, else its Default) or a pseudo parameter resolves to."""
    given = dict(parameters or {})
    return {
        **{name: str(given.get(name, spec.get("Default", ""))) for name, spec in cfn.get("Parameters", {}).items()},
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }


def principals_from_template(
    cfn: Mapping[str, Any], attributes: Attributes, pseudo: Mapping[str, str]
) -> dict[str, Principal]:
    """Each function's (and state machine's) principal, by logical id, from a translated template."""
    resources = cfn.get("Resources", {})
    principals: dict[str, Principal] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") not in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
            continue
        role_ref = resource.get("Properties", {}).get("Role") or resource.get("Properties", {}).get("RoleArn")
        role_id = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
        role = resources.get(role_id or "", {})
        if role.get("Type") != "AWS::IAM::Role":
            log.warning("%s has no role of the stack's own; its calls are not checked", logical_id)
            continue
        role_name = attributes.get(role_id or "", {}).get("Ref", role_id or "")
        statements = _role_statements(role.get("Properties", {}), attributes, pseudo)
        principals[logical_id] = Principal(logical_id, role_name, tuple(statements))
    return principals
