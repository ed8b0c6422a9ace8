"""A template's `Rules`, checked as CloudFormation checks them: before anything is created, from parameters alone.

moto ignores the section, so a stack whose parameters break a rule would deploy here and fail on AWS.
CloudFormation evaluates each rule whose `RuleCondition` holds (or that has none) and refuses the stack with
the first failing assertion's `AssertDescription`. The rule functions (Fn::And, Fn::Or, Fn::Not, Fn::Equals,
Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn, Ref to a parameter: its given value, or its default)
are evaluated as conditions are, by localcloud.intrinsics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localcloud.intrinsics import Stack, Unresolvable


class RuleFailed(Exception):
    """A rule's assertion failed, or the section is not one CloudFormation would take."""


def check_rules(template: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """RuleFailed with the failing assertion's description, as CloudFormation's ValidationError has it."""
    stack = Stack(template, parameters={name: str(value) for name, value in given.items()})
    try:
        for rule_name, rule in (template.get("Rules") or {}).items():
            condition = rule.get("RuleCondition")
            if condition is not None and not stack.holds(condition):
                continue
            for assertion in rule.get("Assertions", []):
                if not stack.holds(assertion["Assert"]):
                    description = assertion.get("AssertDescription", f"Assertion of rule {rule_name} failed")
                    raise RuleFailed(f"{description} (rule {rule_name})")
    except Unresolvable as exc:
        raise RuleFailed(f"Template error: a rule uses what Rules cannot evaluate: {exc}") from None
