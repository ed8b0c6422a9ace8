"""A template's `Rules`, checked as CloudFormation checks them: before anything is created, from parameters alone.

moto ignores the section, so a stack whose parameters break a rule would deploy here and fail on AWS.
CloudFormation evaluates each rule whose `RuleCondition` holds (or that has none) and refuses the stack with
the first failing assertion's `AssertDescription`. The rule functions are these (CloudFormation's list):
Fn::And, Fn::Or, Fn::Not, Fn::Equals, Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn, and Ref to a
parameter (its given value, or its default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RuleFailed(Exception):
    """A rule's assertion failed, or the section is not one CloudFormation would take."""


def _values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    declared = template.get("Parameters", {}) or {}
    values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    values.update({name: str(value) for name, value in given.items()})
    return values


def _evaluate(expression: Any, values: Mapping[str, str]) -> Any:
    if isinstance(expression, list):
        return [_evaluate(item, values) for item in expression]
    if not isinstance(expression, dict):
        return str(expression) if not isinstance(expression, bool) else expression
    if len(expression) != 1:
        raise RuleFailed(f"Template error: a rule function takes one key, not {sorted(expression)}")
    ((name, argument),) = expression.items()
    if name == "Ref":
        if argument not in values:
            raise RuleFailed(f"Template error: rule refers to unknown parameter {argument}")
        return values[argument]
    arguments = _evaluate(argument, values)
    match name:
        case "Fn::And":
            return all(arguments)
        case "Fn::Or":
            return any(arguments)
        case "Fn::Not":
            return not arguments[0]
        case "Fn::Equals":
            return arguments[0] == arguments[1]
        case "Fn::Contains":
            return arguments[1] in arguments[0]
        case "Fn::EachMemberEquals":
            return all(member == arguments[1] for member in arguments[0])
        case "Fn::EachMemberIn":
            return all(member in arguments[1] for member in arguments[0])
    raise RuleFailed(f"Template error: {name} is not a function Rules may use")


def check_rules(template: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """RuleFailed with the failing assertion's description, as CloudFormation's ValidationError has it."""
    values = _values(template, given)
    for rule_name, rule in (template.get("Rules") or {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not _evaluate(condition, values):
            continue
        for assertion in rule.get("Assertions", []):
            if not _evaluate(assertion["Assert"], values):
                description = assertion.get("AssertDescription", f"Assertion of rule {rule_name} failed")
                raise RuleFailed(f"{description} (rule {rule_name})")
