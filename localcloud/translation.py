"""template.yaml to plain CloudFormation that moto's CloudFormation can create, offline.

Steps (`translate`): parse the YAML with CloudFormation's short tags (localcloud.template); zip each
function's CodeUri and layer's ContentUri into a moto bucket and point the template at them, and inline a
state machine's DefinitionUri file as Definition (localcloud.packaging); run the SAM transform with
samtranslator, no AWS calls (localcloud.sam); then, here, bend the result to what moto can do:

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

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.packaging import inline_definitions, package_code
from localcloud.sam import to_cloudformation
from localcloud.template import Resolver, load_template, referenced_ids, replace_references

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


def offline_translation(template_path: Path, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The SAM transform of a template without packaging its code (for policies only)."""
    sam = load_template(template_path)
    for resource in sam.get("Resources", {}).values():
        props = resource.get("Properties", {})
        for prop in ("CodeUri", "ContentUri"):
            if isinstance(props.get(prop), str):
                props[prop] = "s3://localcloud-offline/code.zip"
    inline_definitions(sam, Path(template_path).resolve().parent)
    return to_cloudformation(sam, parameters)
