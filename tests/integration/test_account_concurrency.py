"""The stack deploys on a brand-new account: Lambda's reserved-concurrency rule, as the local cloud holds it.

Lambda keeps 100 of an account's concurrency unreserved, and a new account's quota is 10: a stack that
reserves any concurrency cannot deploy there. The local cloud's account is a new one unless told otherwise.
"""

from __future__ import annotations

import pytest

from localcloud import lambdas
from localcloud.__main__ import parse_args
from localcloud.cloud import LocalCloud
from localcloud.deploy import DeployError

# Lambda's own answer to a reservation the account cannot give.
REFUSED = (
    "InvalidParameterValueException",
    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
    "below its minimum value of [100].",
)


def reserved(cloud: LocalCloud, logical_id: str) -> int | None:
    name = cloud.stack.function(logical_id).name
    answer = cloud.client("lambda").get_function_concurrency(FunctionName=name)
    return answer.get("ReservedConcurrentExecutions")


def test_the_template_deploys_on_a_new_accounts_quota_and_reserves_nothing() -> None:
    with LocalCloud(serve_api=False, seed=False) as cloud:
        assert lambdas.limits.account_limit == lambdas.NEW_ACCOUNT_CONCURRENCY == 10
        assert {logical_id: reserved(cloud, logical_id) for logical_id in cloud.stack.functions} == dict.fromkeys(
            cloud.stack.functions
        )


def test_reserving_api_concurrency_on_a_new_account_is_refused_as_lambda_refuses_it() -> None:
    parameters = {"ApiReservedConcurrency": "10"}

    with pytest.raises(DeployError) as refused, LocalCloud(serve_api=False, seed=False, parameters=parameters):
        pass

    code, message = REFUSED
    assert code in str(refused.value)
    assert message in str(refused.value)


def test_an_account_with_room_beyond_the_unreserved_100_gets_the_reservation() -> None:
    parameters = {"ApiReservedConcurrency": "10"}
    with LocalCloud(serve_api=False, seed=False, parameters=parameters, account_concurrency=1000) as cloud:
        assert reserved(cloud, "ApiFunction") == 10


def test_the_command_line_runs_a_new_account_unless_told_its_quota() -> None:
    assert parse_args([]).account_concurrency == 10
    assert parse_args(["--account-concurrency", "1000"]).account_concurrency == 1000
