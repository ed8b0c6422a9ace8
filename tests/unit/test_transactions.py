"""A transaction's actions are named by their caller, and its outcome is read by name, never by position."""

from __future__ import annotations

from typing import Any

import pytest

from batchline.data.transactions import Action, Transaction


class Sent:
    """A table's transact that keeps what it was sent and answers the reasons it is given."""

    def __init__(self, *reasons: str | None) -> None:
        self.reasons = list(reasons)
        self.actions: list[Action] = []

    def __call__(self, *actions: Action) -> list[str | None]:
        self.actions = list(actions)
        return self.reasons


def two_actions(sent: Sent) -> Transaction:
    key: dict[str, Any] = {"pk": "batch_1", "sk": "batch"}
    return (
        Transaction(sent)
        .update("batch", key, "SET #s = :to", condition="#s = :from", names={"#s": "status"}, values={":to": "x"})
        .put("file", {"pk": "file_1", "sk": "file"}, condition="attribute_not_exists(pk)")
    )


def test_actions_are_sent_in_order_as_dynamodb_takes_them_without_empty_maps() -> None:
    sent = Sent()
    outcome = two_actions(sent).write()
    assert outcome.written and not outcome.refused and not outcome.contended
    assert sent.actions == [
        ("Update", {"Key": {"pk": "batch_1", "sk": "batch"}, "UpdateExpression": "SET #s = :to",
                    "ConditionExpression": "#s = :from", "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":to": "x"}}),
        ("Put", {"Item": {"pk": "file_1", "sk": "file"}, "ConditionExpression": "attribute_not_exists(pk)"}),
    ]  # fmt: skip


def test_a_refused_condition_is_answered_by_the_name_of_its_action() -> None:
    outcome = two_actions(Sent("None", "ConditionalCheckFailed")).write()
    assert not outcome.written
    assert outcome.refused == {"file"} and "batch" not in outcome.refused
    assert not outcome.contended  # a failed condition passes no better later
    assert str(outcome) == "cancelled: batch=None, file=ConditionalCheckFailed"


@pytest.mark.parametrize("reasons", [("TransactionConflict", "None"), ("None", "ThrottlingError"), (None,)])
def test_contention_alone_may_pass_later(reasons: tuple[str | None, ...]) -> None:
    outcome = two_actions(Sent(*reasons)).write()
    assert outcome.contended and not outcome.refused and not outcome.written


def test_two_actions_of_one_name_are_refused_as_they_could_not_be_told_apart() -> None:
    with pytest.raises(ValueError, match="'batch'"):
        two_actions(Sent()).delete("batch", {"pk": "batch_1", "sk": "batch"})
