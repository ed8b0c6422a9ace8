"""Where moto's CloudFormation falls short, do the job through moto's service APIs instead.

Before the stack: resources of `translation.EMULATED_TYPES` (Secrets Manager secrets) are created through
the API and references to them become literals.
After the stack: moto registers CloudFormation state machines in a backend that never executes them
and ignores DefinitionSubstitutions, so each is created again through the Step Functions API (which,
with `execute_state_machine` on, reaches the executing backend) under the same name, hence the same
ARN, with its substitutions applied. Bucket NotificationConfiguration, ignored too, is put through the
S3 API.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from localcloud.template import Resolver, TemplateError, referenced_ids, replace_references

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]

_PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": "",
}


@dataclass(frozen=True)
class StateMachineSpec:
    """A state machine as the stack declared it, with moto's resolution of its intrinsics."""

    logical_id: str
    arn: str
    name: str
    definition: str
    substitutions: Mapping[str, str]
    role_arn: str
    type: str

    def resolved_definition(self) -> str:
        """The definition with DefinitionSubstitutions applied, as CloudFormation would."""
        definition = self.definition
        for key, value in self.substitutions.items():
            definition = definition.replace("${" + key + "}", str(value))
        return definition


# ------------------------------------------------------------------------------------ before stack
def _literal_parameters(
    parameters: Mapping[str, str], stack_name: str, region: str, account_id: str
) -> dict[str, Resolver]:
    values = {
        **_PSEUDO_PARAMETERS,
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        **parameters,
    }
    return {name: _constant(str(value)) for name, value in values.items()}


def _constant(value: str) -> Resolver:
    return lambda _attribute: value


def _resolve_literals(value: Any, resolvers: Mapping[str, Resolver]) -> Any:
    """Resolve Ref/Sub of parameters; enough for the properties of an emulated resource."""
    value = replace_references(value, resolvers)
    if isinstance(value, dict):
        text = value.get("Fn::Sub") if len(value) == 1 else None
        if isinstance(text, str) and not referenced_ids(value):
            return text.replace("${!", "${")
        return {key: _resolve_literals(child, resolvers) for key, child in value.items()}
    if isinstance(value, list):
        return [_resolve_literals(child, resolvers) for child in value]
    return value


def create_emulated(
    emulated: Mapping[str, dict[str, Any]],
    client: ClientFactory,
    *,
    stack_name: str,
    parameters: Mapping[str, str],
    region: str,
    account_id: str,
) -> dict[str, dict[str, str]]:
    """Create each emulated resource through the API; answer logical id -> {Ref/attribute: value}."""
    resolvers = _literal_parameters(parameters, stack_name, region, account_id)
    created: dict[str, dict[str, str]] = {}
    for logical_id, resource in emulated.items():
        props = _resolve_literals(resource.get("Properties", {}), resolvers)
        unresolved = referenced_ids(props) - set(resolvers)
        if unresolved:
            raise TemplateError(
                f"{logical_id}: the local cloud creates {resource['Type']} before the stack, so it "
                f"cannot refer to {', '.join(sorted(unresolved))}"
            )
        if resource["Type"] == "AWS::SecretsManager::Secret":
            created[logical_id] = _create_secret(client("secretsmanager"), logical_id, props, stack_name)
        else:  # pragma: no cover - EMULATED_TYPES and this function change together
            raise TemplateError(f"no emulation for {resource['Type']}")
        log.info("created %s %s through the API", resource["Type"], created[logical_id]["Ref"])
    return created


def _create_secret(sm: Any, logical_id: str, props: Mapping[str, Any], stack_name: str) -> dict[str, str]:
    name = props.get("Name") or f"{stack_name}-{logical_id}-{secrets.token_hex(6)}"
    if "SecretString" in props:
        value = str(props["SecretString"])
    else:
        generate = dict(props.get("GenerateSecretString", {}))
        template = generate.pop("SecretStringTemplate", None)
        key = generate.pop("GenerateStringKey", None)
        allowed = {
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludeNumbers",
            "ExcludePunctuation",
            "ExcludeUppercase",
            "ExcludeLowercase",
            "IncludeSpace",
            "RequireEachIncludedType",
        }
        password = sm.get_random_password(**{k: v for k, v in generate.items() if k in allowed})["RandomPassword"]
        if template is not None and key:
            document = json.loads(template)
            document[key] = password
            value = json.dumps(document)
        else:
            value = password
    kwargs: dict[str, Any] = {"Name": name, "SecretString": value}
    if props.get("Description"):
        kwargs["Description"] = props["Description"]
    if props.get("Tags"):
        kwargs["Tags"] = props["Tags"]
    arn = sm.create_secret(**kwargs)["ARN"]
    return {"Ref": arn, "Id": arn}


def emulated_resolvers(created: Mapping[str, Mapping[str, str]]) -> dict[str, Resolver]:
    """Resolvers that turn references to emulated resources into their literal values."""

    def resolver(values: Mapping[str, str]) -> Resolver:
        return lambda attribute: values[attribute or "Ref"]

    return {logical_id: resolver(values) for logical_id, values in created.items()}


# ------------------------------------------------------------------------------------- after stack
def parse_state_machine(logical_id: str, output_value: str) -> StateMachineSpec:
    """A StateMachineSpec from the hidden output template.add_hidden_outputs made."""
    payload = json.loads(output_value)
    definition = payload["definition"]
    if not isinstance(definition, str):
        definition = json.dumps(definition)
    arn = payload["arn"]
    return StateMachineSpec(
        logical_id=logical_id,
        arn=arn,
        name=arn.rsplit(":", 1)[-1],
        definition=definition,
        substitutions={k: str(v) for k, v in (payload.get("substitutions") or {}).items()},
        role_arn=payload.get("roleArn") or "",
        type=payload.get("type") or "STANDARD",
    )


def register_state_machine(sfn: Any, spec: StateMachineSpec) -> str:
    """Create (or update) the state machine where moto executes it; answer its ARN."""
    definition = spec.resolved_definition()
    left = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition)))
    if left:
        log.warning("%s: no DefinitionSubstitutions for %s", spec.logical_id, ", ".join(left))
    try:
        arn: str = sfn.create_state_machine(
            name=spec.name, definition=definition, roleArn=spec.role_arn, type=spec.type
        )["stateMachineArn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "StateMachineAlreadyExists":
            raise
        sfn.update_state_machine(stateMachineArn=spec.arn, definition=definition, roleArn=spec.role_arn)
        arn = spec.arn
    if arn != spec.arn:
        log.warning("%s registered as %s, but the stack refers to %s", spec.logical_id, arn, spec.arn)
    return arn


def notification_configuration(cfn: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket's CloudFormation NotificationConfiguration in PutBucketNotificationConfiguration form."""

    def filter_of(item: Mapping[str, Any]) -> dict[str, Any]:
        rules = item.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}

    api: dict[str, Any] = {}
    for cfn_key, api_key, target_key, arn_key in (
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
    ):
        items = cfn.get(cfn_key) or []
        if items:
            api[api_key] = [{arn_key: item[target_key], "Events": [item["Event"]], **filter_of(item)} for item in items]
    if (cfn.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled"):
        api["EventBridgeConfiguration"] = {}
    return api


def apply_bucket_notifications(s3: Any, output_value: str) -> str:
    """Put the NotificationConfiguration carried by a hidden output on its bucket; answer the bucket."""
    payload = json.loads(output_value)
    bucket: str = payload["bucket"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=notification_configuration(payload["configuration"])
    )
    return bucket
