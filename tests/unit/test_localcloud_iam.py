"""localcloud.iam decides as IAM does: explicit deny wins, wildcards, conditions, per-item transaction rules."""

from __future__ import annotations

import pytest

from localcloud.iam import Request, is_allowed, requests_for

BUCKET = "arn:aws:s3:::bucket"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/t"


def allow(action: object, resource: object, **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_an_allow_must_match_action_and_resource() -> None:
    policy = [allow("s3:GetObject", f"{BUCKET}/files/*")]
    assert is_allowed(policy, Request("s3:GetObject", f"{BUCKET}/files/t/f"))
    assert not is_allowed(policy, Request("s3:GetObject", f"{BUCKET}/work/t/f"))
    assert not is_allowed(policy, Request("s3:PutObject", f"{BUCKET}/files/t/f"))
    assert not is_allowed([], Request("s3:GetObject", f"{BUCKET}/files/t/f"))


def test_actions_ignore_case_and_wildcards_take_question_marks() -> None:
    policy = [allow("S3:get*", "arn:aws:s3:::b?cket/*")]
    assert is_allowed(policy, Request("s3:GetObjectVersion", f"{BUCKET}/x"))
    assert not is_allowed(policy, Request("s3:GetObject", "arn:aws:s3:::buckets/x"))


def test_an_explicit_deny_wins_over_any_allow() -> None:
    policy = [allow("s3:*", "*"), {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"{BUCKET}/*"}]
    assert is_allowed(policy, Request("s3:PutObject", f"{BUCKET}/k"))
    assert not is_allowed(policy, Request("s3:DeleteObject", f"{BUCKET}/k"))


def test_a_condition_that_does_not_match_grants_nothing_and_denies_nothing() -> None:
    policy = [allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": "uploads/*"}})]
    assert is_allowed(policy, Request("s3:ListBucket", BUCKET, {"s3:prefix": "uploads/t/u/"}))
    assert not is_allowed(policy, Request("s3:ListBucket", BUCKET, {"s3:prefix": "files/"}))
    # A listing without a prefix carries no s3:prefix key: the condition cannot hold.
    assert not is_allowed(policy, Request("s3:ListBucket", BUCKET))
    with_other = [*policy, allow("s3:ListBucket", BUCKET)]
    assert is_allowed(with_other, Request("s3:ListBucket", BUCKET, {"s3:prefix": "files/"}))


def test_an_unknown_condition_operator_never_grants() -> None:
    policy = [allow("s3:GetObject", "*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}})]
    assert not is_allowed(policy, Request("s3:GetObject", f"{BUCKET}/k"))


def test_a_transaction_is_authorized_item_by_item_with_each_items_own_action() -> None:
    items = [{"Update": {"TableName": "t"}}, {"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "u"}}]
    asked = requests_for("dynamodb", "TransactWriteItems", {"TransactItems": items}, "us-east-1")
    assert [(r.action, r.resource.rsplit("/", 1)[-1]) for r in asked] == [
        ("dynamodb:UpdateItem", "t"),
        ("dynamodb:PutItem", "t"),
        ("dynamodb:ConditionCheckItem", "u"),
    ]


def test_a_copy_needs_the_write_of_its_target_and_the_read_of_its_source() -> None:
    asked = requests_for(
        "s3",
        "CopyObject",
        {"Bucket": "b", "Key": "files/x", "CopySource": {"Bucket": "b", "Key": "inbox/y", "VersionId": "v1"}},
        "us-east-1",
    )
    assert [(r.action, r.resource) for r in asked] == [
        ("s3:PutObject", "arn:aws:s3:::b/files/x"),
        ("s3:GetObjectVersion", "arn:aws:s3:::b/inbox/y"),
    ]
    text = requests_for(
        "s3", "UploadPartCopy", {"Bucket": "b", "Key": "f", "CopySource": "b/uploads/a%20b"}, "us-east-1"
    )
    assert text[1] == Request("s3:GetObject", "arn:aws:s3:::b/uploads/a b")


@pytest.mark.parametrize(
    ("service", "operation", "params", "action", "resource"),
    [
        ("dynamodb", "Query", {"TableName": "t", "IndexName": "gsi1"}, "dynamodb:Query", f"{TABLE}/index/gsi1"),
        ("s3", "HeadObject", {"Bucket": "bucket", "Key": "k"}, "s3:GetObject", f"{BUCKET}/k"),
        ("s3", "ListObjectsV2", {"Bucket": "bucket", "Prefix": "p/"}, "s3:ListBucket", BUCKET),
        ("events", "PutEvents", {"Entries": [{"EventBusName": "default"}]}, "events:PutEvents",
         "arn:aws:events:us-east-1:123456789012:event-bus/default"),
        ("bedrock-runtime", "Converse", {"modelId": "amazon.nova-lite-v1:0"}, "bedrock:InvokeModel",
         "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"),
        ("stepfunctions", "StartExecution", {"stateMachineArn": "arn:sm"}, "states:StartExecution", "arn:sm"),
    ],
)  # fmt: skip
def test_calls_map_to_the_action_and_resource_iam_checks(
    service: str, operation: str, params: dict[str, object], action: str, resource: str
) -> None:
    (asked,) = requests_for(service, operation, params, "us-east-1")
    assert (asked.action, asked.resource) == (action, resource)
