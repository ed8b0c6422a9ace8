"""IAM's policy language as the local cloud evaluates it: one request against one identity's statements.

The evaluation of identity-based policies only (no resource policies, boundaries or SCPs): an explicit Deny
wins, otherwise some Allow must match the action, the resource and the condition. Wildcards and condition
operators are IAM's; an operator not emulated never grants, so the local cloud is never more lenient than IAM.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# The local cloud's one account: every ARN a request names, and every role's, is in it.
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class Request:
    """One authorization question: may the principal do `action` on `resource` (with these condition keys)?"""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards: * any run of characters (slashes included), ? one character; nothing else is special.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_CONDITIONS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, expected: actual == expected,
    "StringNotEquals": lambda actual, expected: actual != expected,
    "StringLike": lambda actual, expected: _matches(expected, actual),
    "StringNotLike": lambda actual, expected: not _matches(expected, actual),
    "ArnEquals": lambda actual, expected: actual == expected,
    "ArnLike": lambda actual, expected: _matches(expected, actual),
    "Bool": lambda actual, expected: actual.lower() == str(expected).lower(),
}


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    keys = {key.lower(): value for key, value in context.items()}
    for operator, tests in condition.items():
        name, if_exists = (operator[:-8], True) if operator.endswith("IfExists") else (operator, False)
        compare = _CONDITIONS.get(name)
        if compare is None:
            # Unknown operators never grant: the local cloud must not be more lenient than IAM.
            log.warning("IAM condition operator %s is not emulated; treated as not matching", operator)
            return False
        negated = "Not" in name
        for key, expected in tests.items():
            actual = keys.get(key.lower())
            if actual is None:
                if not if_exists:
                    return False
                continue
            results = [compare(actual, str(e)) for e in _as_list(expected)]
            if not (all(results) if negated else any(results)):
                return False
    return True


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_matches(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_matches(a, request.action, ignore_case=True) for a in _as_list(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_matches(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(_matches(r, request.resource) for r in _as_list(statement.get("NotResource", []))):
        return False
    return _condition_holds(statement.get("Condition") or {}, request.context)


def is_allowed(statements: Sequence[Mapping[str, Any]], request: Request) -> bool:
    """IAM's evaluation for one identity: an explicit Deny wins, else an Allow must apply."""
    applicable = [s for s in statements if _statement_applies(s, request)]
    if any(s.get("Effect") == "Deny" for s in applicable):
        return False
    return any(s.get("Effect") == "Allow" for s in applicable)
