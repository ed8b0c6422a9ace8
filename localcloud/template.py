"""A CloudFormation or SAM template as data: its YAML with the short tags, and the references in it.

`load_template` reads a template as CloudFormation does (short tags become their long forms; dates stay
strings); `referenced_ids` and `replace_references` find and substitute the Ref, GetAtt and Sub references
of a fragment, which the translation (localcloud.translation) and deploy's bridges both need.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

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
