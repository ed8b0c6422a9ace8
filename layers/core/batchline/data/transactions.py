"""Transactions built from named actions, and their outcome read by name.

DynamoDB answers a cancelled TransactWriteItems with one reason per action, in the order they were sent.
Each action here is named by its caller ("batch", "tenant", "file"), so a caller asks whether the batch's
condition was refused rather than decoding a position, which would change meaning silently the day an
action is added or moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchline.data.contention import RETRYABLE_REASONS

# The reason DynamoDB gives for an action whose own condition failed.
REFUSED = "ConditionalCheckFailed"

Action = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """What became of a transaction: written, or each named action's cancellation reason."""

    names: tuple[str, ...]
    codes: tuple[str | None, ...]  # () when written; DynamoDB's "None" for an action that was not at fault

    @property
    def written(self) -> bool:
        return not self.codes

    @property
    def refused(self) -> frozenset[str]:
        """The actions whose own condition failed: `"batch" in outcome.refused`."""
        return frozenset(name for name, code in zip(self.names, self.codes, strict=False) if code == REFUSED)

    @property
    def contended(self) -> bool:
        """Cancelled only for contention or throttling, which the same transaction, tried later, may pass."""
        return bool(self.codes) and set(self.codes) <= {"None", None, *RETRYABLE_REASONS}

    def __str__(self) -> str:
        if self.written:
            return "written"
        if len(self.codes) != len(self.names):  # DynamoDB gave no reason per action
            return f"cancelled: {list(self.codes)}"
        return "cancelled: " + ", ".join(f"{name}={code}" for name, code in zip(self.names, self.codes, strict=True))


class Transaction:
    """Actions written together or not at all, each under a name its caller gives it; `write()` sends them.

    Expressions are DynamoDB's strings with their placeholders: the values are plain Python, serialized by
    the table resource's client as every other write is.
    """

    def __init__(self, transact: Callable[..., list[str | None]]) -> None:
        self._transact = transact
        self._names: list[str] = []
        self._actions: list[Action] = []

    def put(
        self,
        name: str,
        item: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Transaction:
        return self._add(name, "Put", {"Item": item}, condition, names, values)

    def update(
        self,
        name: str,
        key: dict[str, Any],
        expression: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Transaction:
        return self._add(name, "Update", {"Key": key, "UpdateExpression": expression}, condition, names, values)

    def delete(
        self,
        name: str,
        key: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Transaction:
        return self._add(name, "Delete", {"Key": key}, condition, names, values)

    def write(self) -> Outcome:
        """Send the actions as one TransactWriteItems."""
        return Outcome(tuple(self._names), tuple(self._transact(*self._actions)))

    def _add(
        self,
        name: str,
        verb: str,
        params: dict[str, Any],
        condition: str | None,
        names: dict[str, str] | None,
        values: dict[str, Any] | None,
    ) -> Transaction:
        if name in self._names:
            raise ValueError(f"Two actions named {name!r} in one transaction: their outcomes could not be told apart.")
        if condition is not None:
            params["ConditionExpression"] = condition
        # DynamoDB refuses an empty map of names or values, so none is sent rather than {}.
        if names:
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = values
        self._names.append(name)
        self._actions.append((verb, params))
        return self
