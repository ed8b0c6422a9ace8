"""template.yaml to plain CloudFormation that moto's CloudFormation can create, offline.

Steps (`translate`): parse the YAML with CloudFormation's short tags; zip each function's CodeUri and
layer's ContentUri into a moto bucket and point the template at them; inline a state machine's
DefinitionUri file as Definition; run the SAM transform with samtranslator (no AWS calls); then bend
the result to what moto can do:

- resources moto cannot create through CloudFormation but can through its API (`EMULATED_TYPES`,
  e.g. Secrets Manager secrets) are taken out, for deploy to create and to substitute references to;
- resources of other types moto's CloudFormation lacks (API Gateway: the local API is uvicorn) are
  removed, with every resource and output that refers to them; functions, state machines and IAM
  pieces that refer to them keep a placeholder string instead, so no function is lost;
- moto ignores a state machine's definition substitutions and a bucket's NotificationConfiguration,
  so hidden outputs (`HIDDEN_OUTPUT_PREFIX`) carry them, resolved by moto itself through
  Fn::ToJsonString, for deploy's bridges to apply after the stack exists.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

HIDDEN_OUTPUT_PREFIX = "LocalCloudBridge"
STATE_MACHINE_OUTPUT = f"{HIDDEN_OUTPUT_PREFIX}StateMachine"
BUCKET_NOTIFICATIONS_OUTPUT = f"{HIDDEN_OUTPUT_PREFIX}BucketNotifications"

# Created through moto's API by deploy (see bridges.create_emulated), not by its CloudFormation.
EMULATED_TYPES = frozenset({"AWS::SecretsManager::Secret"})

# Left out although moto may know them: the local API is uvicorn; custom resources need a responder.
REMOVED_TYPE_PREFIXES = ("AWS::ApiGateway::", "AWS::ApiGatewayV2::", "Custom::")
REMOVED_TYPES = frozenset({"AWS::CloudFormation::CustomResource"})

# These keep a placeholder where they refer to a removed resource instead of being removed with it.
PATCHED_TYPES = frozenset(
    {
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
    }
)

# The AWS managed policies SAM may name, so the transform never asks IAM for the list.
AWS_MANAGED_POLICIES: Mapping[str, str] = {
    name: f"arn:aws:iam::aws:policy/{path}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/AWSLambdaBasicExecutionRole",
        "AWSLambdaVPCAccessExecutionRole": "service-role/AWSLambdaVPCAccessExecutionRole",
        "AWSLambdaSQSQueueExecutionRole": "service-role/AWSLambdaSQSQueueExecutionRole",
        "AWSLambdaDynamoDBExecutionRole": "service-role/AWSLambdaDynamoDBExecutionRole",
        "AWSLambdaKinesisExecutionRole": "service-role/AWSLambdaKinesisExecutionRole",
        "AWSLambdaRole": "service-role/AWSLambdaRole",
        "AWSLambdaExecute": "AWSLambdaExecute",
        "AWSXrayWriteOnlyAccess": "AWSXrayWriteOnlyAccess",
        "AWSXRayDaemonWriteAccess": "AWSXRayDaemonWriteAccess",
        "AWSStepFunctionsFullAccess": "AWSStepFunctionsFullAccess",
        "AmazonS3ReadOnlyAccess": "AmazonS3ReadOnlyAccess",
        "AmazonS3FullAccess": "AmazonS3FullAccess",
        "AmazonDynamoDBFullAccess": "AmazonDynamoDBFullAccess",
        "AmazonSQSFullAccess": "AmazonSQSFullAccess",
        "AmazonEventBridgeFullAccess": "AmazonEventBridgeFullAccess",
        "CloudWatchLogsFullAccess": "CloudWatchLogsFullAccess",
        "SecretsManagerReadWrite": "SecretsManagerReadWrite",
    }.items()
}

_SKIPPED_IN_ZIPS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".aws-sam"})
_SUB_TOKEN = re.compile(r"\$\{([^!}][^}]*)\}")


class TemplateError(Exception):
    """The template cannot be turned into something the local cloud can create."""


# ------------------------------------------------------------------------------------------ YAML
class CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """A SafeLoader that reads CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...)."""


# Dates such as `Version: 2012-10-17` must stay strings, as CloudFormation reads them.
CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def loads_template(text: str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template given as YAML or JSON text."""
    loader = CfnLoader(text)
    try:
        document = loader.get_single_data()
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise TemplateError("a template must be a mapping")
    return document


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template file (short tags become their long forms; GetAtt "a.b" becomes ["a", "b"])."""
    return loads_template(Path(path).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ references
def referenced_ids(value: Any) -> set[str]:
    """Logical ids (and parameters, pseudo parameters) a template fragment refers to."""
    found: set[str] = set()
    for key, operand in _intrinsics(value):
        if key == "Ref" and isinstance(operand, str):
            found.add(operand)
        elif key == "Fn::GetAtt":
            name = operand.split(".", 1)[0] if isinstance(operand, str) else operand[0]
            if isinstance(name, str):
                found.add(name)
        elif key == "Fn::Sub":
            text, variables = (operand, {}) if isinstance(operand, str) else (operand[0], operand[1])
            found.update(
                token.split(".", 1)[0] for token in _SUB_TOKEN.findall(text) if token.split(".", 1)[0] not in variables
            )
    return found


def _intrinsics(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        if len(value) == 1:
            key, operand = next(iter(value.items()))
            if key in ("Ref", "Fn::GetAtt", "Fn::Sub"):
                yield key, operand
        for child in value.values():
            yield from _intrinsics(child)
    elif isinstance(value, list):
        for child in value:
            yield from _intrinsics(child)


Resolver = Callable[[str | None], str]
"""Gives a literal for a reference: the attribute name for GetAtt, None for Ref."""


def replace_references(value: Any, resolvers: Mapping[str, Resolver]) -> Any:
    """A copy of `value` where Ref/GetAtt/Sub references to `resolvers`' ids become literals."""
    if isinstance(value, list):
        return [replace_references(child, resolvers) for child in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        key, operand = next(iter(value.items()))
        if key == "Ref" and operand in resolvers:
            return resolvers[operand](None)
        if key == "Fn::GetAtt":
            name, attribute = operand.split(".", 1) if isinstance(operand, str) else operand
            if name in resolvers:
                return resolvers[name](attribute)
        if key == "Fn::Sub":
            if isinstance(operand, str):
                return {"Fn::Sub": _replace_in_sub(operand, resolvers, {})}
            text, variables = operand
            return {
                "Fn::Sub": [
                    _replace_in_sub(text, resolvers, variables),
                    replace_references(variables, resolvers),
                ]
            }
    return {key: replace_references(child, resolvers) for key, child in value.items()}


def _replace_in_sub(text: str, resolvers: Mapping[str, Resolver], variables: Mapping[str, Any]) -> str:
    def literal(match: re.Match[str]) -> str:
        name, _, attribute = match.group(1).partition(".")
        if name in variables or name not in resolvers:
            return match.group(0)
        return resolvers[name](attribute or None)

    return _SUB_TOKEN.sub(literal, text)


# ---------------------------------------------------------------------------------- translation
@dataclass(frozen=True)
class HiddenOutput:
    """A stack output the local cloud adds to read back values moto resolves but does not apply."""

    kind: str
    logical_id: str


@dataclass
class Translation:
    """A SAM template made into CloudFormation moto can create, and what it took to get there."""

    template: dict[str, Any]
    template_dir: Path
    # S3 key of each uploaded zip -> the local folder it was made from.
    code_dirs: dict[str, Path] = field(default_factory=dict)
    # CloudFormation logical id of each function -> its code folder and its layers' folders.
    function_code: dict[str, Path | None] = field(default_factory=dict)
    function_layers: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    # Logical id -> resource (Type, Properties) for deploy to create through moto's API.
    emulated: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Logical id (or "Outputs.<key>") -> why it was left out.
    removed: dict[str, str] = field(default_factory=dict)
    # Logical id -> the removed resources it refers to, now placeholder strings.
    patched: dict[str, list[str]] = field(default_factory=dict)
    hidden_outputs: dict[str, HiddenOutput] = field(default_factory=dict)


class StaticManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which lists IAM) with `AWS_MANAGED_POLICIES`."""

    def __init__(self, policies: Mapping[str, str] = AWS_MANAGED_POLICIES) -> None:
        self._policy_map = dict(policies)

    def load(self) -> dict[str, str]:
        """The static name -> ARN map."""
        return dict(self._policy_map)


def zip_dir(folder: Path) -> bytes:
    """A deterministic zip of a folder (sorted, fixed timestamps; caches and bytecode left out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part in _SKIPPED_IN_ZIPS for part in relative.parts) or path.suffix == ".pyc":
                continue
            if path.is_file():
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def package_code(sam: dict[str, Any], template_dir: Path, s3: Any, bucket: str) -> dict[str, Path]:
    """Upload local CodeUri/ContentUri folders to `bucket` and point the SAM template at them."""
    code_dirs: dict[str, Path] = {}
    global_uri = sam.get("Globals", {}).get("Function", {}).get("CodeUri")
    for logical_id, resource in sam.get("Resources", {}).items():
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            prop = "CodeUri"
        elif kind == "AWS::Serverless::LayerVersion":
            prop = "ContentUri"
        else:
            continue
        props = resource.setdefault("Properties", {})
        uri = props.get(prop, global_uri if prop == "CodeUri" else None)
        if props.get("InlineCode") or props.get("ImageUri") or not isinstance(uri, str):
            continue
        if uri.startswith("s3://"):
            continue
        folder = (template_dir / uri).resolve()
        if not folder.is_dir():
            raise TemplateError(f"{logical_id}: {prop} {uri!r} is not a folder next to the template")
        data = zip_dir(folder)
        key = f"{logical_id}/{hashlib.sha256(data).hexdigest()}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        props[prop] = {"Bucket": bucket, "Key": key} if prop == "CodeUri" else f"s3://{bucket}/{key}"
        code_dirs[key] = folder
    return code_dirs


def inline_definitions(sam: dict[str, Any], template_dir: Path) -> None:
    """Replace each state machine's local DefinitionUri file by its content as Definition."""
    for logical_id, resource in sam.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties", {})
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str) or uri.startswith("s3://"):
            continue
        path = (template_dir / uri).resolve()
        if not path.is_file():
            raise TemplateError(f"{logical_id}: DefinitionUri {uri!r} is not a file next to the template")
        # JSON is YAML; the CloudFormation loader also accepts short tags in a YAML definition.
        props["Definition"] = loads_template(path.read_text(encoding="utf-8"))
        del props["DefinitionUri"]


def to_cloudformation(sam: dict[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run the SAM transform offline (samtranslator with a static managed-policy map)."""
    if "Transform" not in sam:
        return copy.deepcopy(sam)
    # Imported here: samtranslator (and botocore with it) is slow to import, and parsing is not.
    from samtranslator.translator.transform import transform

    loader: Any = StaticManagedPolicyLoader()  # transform only ever calls .load()
    translated: dict[str, Any] = transform(copy.deepcopy(sam), dict(parameters or {}), loader)
    return translated


def moto_supported_types() -> frozenset[str]:
    """Resource types moto's CloudFormation creates (or deliberately treats as no-ops)."""
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    return frozenset(get_model_map()) | frozenset(NULL_MODELS)


def _is_removed_type(kind: str, supported: frozenset[str]) -> bool:
    return kind in REMOVED_TYPES or kind.startswith(REMOVED_TYPE_PREFIXES) or kind not in supported


def drop_unsupported(translation: Translation, supported: frozenset[str] | None = None) -> None:
    """Take out emulated resources, remove what moto cannot create, and what depends on that."""
    supported = moto_supported_types() if supported is None else supported
    resources: dict[str, Any] = translation.template.setdefault("Resources", {})
    for logical_id in [k for k, r in resources.items() if r.get("Type") in EMULATED_TYPES]:
        translation.emulated[logical_id] = resources.pop(logical_id)

    removed: dict[str, str] = {
        logical_id: f"moto cannot create {resource['Type']}"
        for logical_id, resource in resources.items()
        if _is_removed_type(resource["Type"], supported)
    }
    changed = True
    while changed:
        changed = False
        for logical_id, resource in resources.items():
            if logical_id in removed:
                continue
            refs = sorted(referenced_ids(resource.get("Properties", {})) & removed.keys())
            if not refs:
                continue
            if resource["Type"] in PATCHED_TYPES:
                translation.patched[logical_id] = refs
                resource["Properties"] = replace_references(
                    resource["Properties"], {ref: _placeholder(ref) for ref in refs}
                )
            else:
                removed[logical_id] = f"refers to removed {', '.join(refs)}"
                changed = True
    for logical_id in removed:
        del resources[logical_id]
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if isinstance(depends, str) and depends in removed:
            del resource["DependsOn"]
        elif isinstance(depends, list):
            resource["DependsOn"] = [d for d in depends if d not in removed]
    outputs: dict[str, Any] = translation.template.get("Outputs", {})
    for key in list(outputs):
        refs = sorted(referenced_ids(outputs[key]) & removed.keys())
        if refs:
            del outputs[key]
            removed[f"Outputs.{key}"] = f"refers to removed {', '.join(refs)}"
    translation.removed.update(removed)
    for logical_id, reason in removed.items():
        log.info("left out of the local stack: %s (%s)", logical_id, reason)


def _placeholder(logical_id: str) -> Resolver:
    return lambda _attribute: f"localcloud-removed-{logical_id}"


def add_hidden_outputs(translation: Translation) -> None:
    """Add outputs through which moto resolves what its CloudFormation ignores (see module doc)."""
    resources = translation.template.get("Resources", {})
    outputs = translation.template.setdefault("Outputs", {})
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            if "DefinitionString" in props:
                definition = props["DefinitionString"]
            elif "Definition" in props:
                definition = {"Fn::ToJsonString": props["Definition"]}
            else:
                log.warning("%s: only an inline definition can be made to execute locally", logical_id)
                continue
            payload = {
                "arn": {"Ref": logical_id},
                "definition": definition,
                "substitutions": props.get("DefinitionSubstitutions", {}),
                "roleArn": props.get("RoleArn", ""),
                "type": props.get("StateMachineType", "STANDARD"),
            }
            key = f"{STATE_MACHINE_OUTPUT}{logical_id}"
            translation.hidden_outputs[key] = HiddenOutput("state_machine", logical_id)
        elif resource["Type"] == "AWS::S3::Bucket" and props.get("NotificationConfiguration"):
            payload = {"bucket": {"Ref": logical_id}, "configuration": props["NotificationConfiguration"]}
            key = f"{BUCKET_NOTIFICATIONS_OUTPUT}{logical_id}"
            translation.hidden_outputs[key] = HiddenOutput("bucket_notifications", logical_id)
        else:
            continue
        outputs[key] = {"Value": {"Fn::ToJsonString": payload}}


def locate_code(translation: Translation) -> None:
    """Map each function (by its CloudFormation logical id) to its code folder and layer folders."""
    resources = translation.template.get("Resources", {})
    layer_dirs: dict[str, Path] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            folder = translation.code_dirs.get(resource["Properties"].get("Content", {}).get("S3Key", ""))
            if folder is not None:
                layer_dirs[logical_id] = folder
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        translation.function_code[logical_id] = translation.code_dirs.get(props.get("Code", {}).get("S3Key", ""))
        layers = [ref.get("Ref") for ref in props.get("Layers", []) if isinstance(ref, dict)]
        translation.function_layers[logical_id] = tuple(layer_dirs[r] for r in layers if r in layer_dirs)


def translate(
    template_path: Path,
    *,
    s3: Any,
    bucket: str,
    parameters: Mapping[str, str] | None = None,
) -> Translation:
    """Read, package, transform and adapt a SAM template for moto (see the module docstring)."""
    template_path = Path(template_path).resolve()
    template_dir = template_path.parent
    sam = load_template(template_path)
    code_dirs = package_code(sam, template_dir, s3, bucket)
    inline_definitions(sam, template_dir)
    translation = Translation(
        template=to_cloudformation(sam, parameters), template_dir=template_dir, code_dirs=code_dirs
    )
    drop_unsupported(translation)
    add_hidden_outputs(translation)
    locate_code(translation)
    json.dumps(translation.template)  # fail here, not inside moto, if something is not JSON
    return translation
