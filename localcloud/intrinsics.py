"""Evaluate a template's intrinsic functions for a given stack, account and region, without deploying.

For static checks (make check, template invariant tests): what a name or an ARN becomes for a stack
name that CloudFormation would accept. Resources resolve to examples of the values CloudFormation
gives them (a function's Ref is its generated name, its Arn the matching ARN; a bucket's Ref is its
BucketName when the template sets one); attributes of other resources are opaque examples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# CloudFormation's own rule for stack names.
STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,127}")
EXAMPLE_STACK_ID_UUID = "1c2fa620-982a-11e3-aff7-50e2416294e0"


class Unresolvable(Exception):
    """The value uses an intrinsic, or names something, that these checks cannot evaluate."""


class _NoValue:
    """`Ref: AWS::NoValue`: the list item or property that holds it is left out."""


NO_VALUE = _NoValue()


@dataclass
class Stack:
    """Where a template is evaluated."""

    template: Mapping[str, Any]
    name: str = "batchline"
    account: str = "123456789012"
    region: str = "us-east-1"
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def stack_id(self) -> str:
        return f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.name}/{EXAMPLE_STACK_ID_UUID}"

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.name,
            "AWS::StackId": self.stack_id,
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return str(self.parameters[name])
        declared = self.template.get("Parameters", {}).get(name)
        if declared is not None:
            if "Default" not in declared:
                raise Unresolvable(f"parameter {name} has no default and no value")
            return str(declared["Default"])
        resource = self.template.get("Resources", {}).get(name)
        if resource is None:
            raise Unresolvable(f"no parameter or resource {name}")
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind == "AWS::S3::Bucket" and "BucketName" in props:
            return str(self.resolve(props["BucketName"]))
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            if "FunctionName" in props:
                return str(self.resolve(props["FunctionName"]))
            return f"{self.name}-{name}-EXAMPLE12345"[:64]
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return self.get_att(name, "Arn")
        # Most other resources' Ref is a name CloudFormation generates this way.
        return f"{self.name}-{name}-EXAMPLE12345"

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.template.get("Resources", {}).get(name)
        if resource is None:
            raise Unresolvable(f"no resource {name}")
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function") and attribute == "Arn":
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.ref(name)}"
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{self.ref(name)}"
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine") and attribute in (
            "Arn",
            "Name",
        ):
            machine = str(self.resolve(props["Name"])) if "Name" in props else f"{name}-EXAMPLE12345"
            if attribute == "Name":
                return machine
            return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{machine}"
        return f"example-{name}-{attribute}"

    def resolve(self, value: Any, variables: Mapping[str, str] | None = None) -> Any:
        """The value with every intrinsic evaluated."""
        if isinstance(value, list):
            return [item for item in (self.resolve(item, variables) for item in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            resolved = {key: self.resolve(item, variables) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false, variables)
        if function == "Fn::GetAtt":
            target, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self.get_att(target, attribute)
        if function == "Fn::Sub":
            text, own = (argument, {}) if isinstance(argument, str) else argument
            scope = {**(variables or {}), **{k: str(self.resolve(v)) for k, v in own.items()}}
            return self._sub(text, scope)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.resolve(items, variables))
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(text, variables)).split(separator)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items, variables)[int(self.resolve(index, variables))]
        raise Unresolvable(function)

    def condition(self, name: str) -> bool:
        """The value of one of the template's Conditions."""
        declared = self.template.get("Conditions", {})
        if name not in declared:
            raise Unresolvable(f"no condition {name}")
        return self.holds(declared[name])

    def holds(self, expression: Any) -> bool:
        """A condition function's value (Fn::And, Fn::Or, Fn::Not, Fn::Equals, Condition), or a Rules
        function's (those and Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn), compared as strings."""
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Not":
            return not self.holds(argument[0])
        if function == "Fn::And":
            return all(self.holds(item) for item in argument)
        if function == "Fn::Or":
            return any(self.holds(item) for item in argument)
        if function not in ("Fn::Equals", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn"):
            raise Unresolvable(function)
        first, second = (self.resolve(side) for side in argument)
        if function == "Fn::Equals":
            return str(first) == str(second)
        if function == "Fn::Contains":
            return str(second) in [str(item) for item in first]
        if function == "Fn::EachMemberEquals":
            return all(str(member) == str(second) for member in first)
        return all(str(member) in [str(item) for item in second] for member in first)  # Fn::EachMemberIn

    def _sub(self, text: str, variables: Mapping[str, str]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name:
                target, attribute = name.split(".", 1)
                return self.get_att(target, attribute)
            # A Sub names strings: a reference to AWS::NoValue in one is the template's error, left to fail.
            referenced: str = self.ref(name)
            return referenced

        return re.sub(r"\$\{([^}]+)\}", replace, text)
