"""The local cloud's Step Functions and Lambda fail what AWS fails: Map children, payload limits, throttling.

Small state machines on moto in-process (`mock_aws` with execution on), with the local cloud's patches
(`localcloud.stepfunctions`) and its in-process Lambdas with their limits (`localcloud.lambdas`).
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import iam, lambda_limits, lambdas, metering, stepfunctions, stepfunctions_history, stepfunctions_map
from localcloud.lambdas import LocalFunction
from localcloud.patching import installed

KIB = 1024
HANDLERS = """
import json
import gate

def echo(event, context):
    return event

def fail(event, context):
    if event.get("fail"):
        raise ValueError("this item fails")
    return {}

def sized(event, context):
    # A JSON object of exactly event["bytes"] bytes: {"b":"xxx"}
    return {"b": "x" * (event["bytes"] - len('{"b":""}'))}

def flaky(event, context):
    gate.attempts = getattr(gate, "attempts", 0) + 1
    if gate.attempts == 1:
        raise ValueError("the first attempt fails")
    return event

def held(event, context):
    gate.entered.set()
    gate.release.wait(10)
    return {"held": True}
"""


class Cloud:
    """moto with the local cloud's Step Functions and Lambda behaviour, and helpers to use it."""

    def __init__(self, code_dir: Path) -> None:
        self.code_dir = code_dir
        self.sfn = boto3.client("stepfunctions")
        # No SDK retries: each throttle the test provokes is one invocation refused.
        self.lam = boto3.client("lambda", config=Config(retries={"total_max_attempts": 1}))
        iam = boto3.client("iam")
        self.role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.functions: dict[str, str] = {}

    def function(self, handler: str, reserved: int | None = None) -> str:
        """A Lambda running HANDLERS.<handler> in-process; its ARN."""
        name = f"fn-{handler}-{len(self.functions)}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", HANDLERS)
        arn = self.lam.create_function(
            FunctionName=name, Runtime="python3.13", Role=self.role, Handler=f"app.{handler}",
            Code={"ZipFile": buffer.getvalue()}, Timeout=30,
        )["FunctionArn"]  # fmt: skip
        lambdas.register(LocalFunction(logical_id=name, name=name, arn=arn, handler=f"app.{handler}",
                                       code_dir=self.code_dir, timeout=30))  # fmt: skip
        if reserved is not None:
            self.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
        self.functions[handler] = arn
        return arn

    def run(self, definition: dict[str, Any], execution_input: Any) -> dict[str, Any]:
        """Run a state machine to its end; describe_execution's answer."""
        arn = self.sfn.create_state_machine(
            name=f"sm-{time.monotonic_ns()}", definition=json.dumps(definition), roleArn=self.role
        )["stateMachineArn"]
        started = self.sfn.start_execution(stateMachineArn=arn, name="run", input=json.dumps(execution_input))
        deadline = time.monotonic() + 30
        while True:
            execution: dict[str, Any] = self.sfn.describe_execution(executionArn=started["executionArn"])
            if execution["status"] != "RUNNING":
                return execution
            assert time.monotonic() < deadline, "execution still RUNNING"
            time.sleep(0.02)


@pytest.fixture
def gate() -> Iterator[ModuleType]:
    """A module the handlers import, so a test can hold an invocation in flight deliberately."""
    module = ModuleType("gate")
    module.entered = threading.Event()  # type: ignore[attr-defined]
    module.release = threading.Event()  # type: ignore[attr-defined]
    sys.modules["gate"] = module
    yield module
    module.release.set()  # type: ignore[attr-defined]
    sys.modules.pop("gate", None)


@pytest.fixture
def cloud(tmp_path: Path, gate: ModuleType) -> Iterator[Cloud]:
    (tmp_path / "app.py").write_text(textwrap.dedent(HANDLERS))
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        lambdas.install()
        stepfunctions.install(retry_interval_scale=0.001, wait_scale=0.001)
        try:
            yield Cloud(tmp_path)
        finally:
            stepfunctions.uninstall()
            lambdas.uninstall()


def task(arn: str, **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": arn, "Payload.$": "$"},
        "ResultSelector": {"out.$": "$.Payload"},
        **fields,
    }


def caught(state: dict[str, Any], then: str = "Finalize") -> dict[str, Any]:
    """The state with the product's Catch: States.ALL -> Finalize with $.fault."""
    return {**state, "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.fault", "Next": then}]}


FINALIZE = {"Type": "Pass", "End": True}


def distributed_map(processor_states: dict[str, Any], start_at: str, **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": start_at,
            "States": processor_states,
        },
        "MaxConcurrency": 2,
        "ResultPath": None,
        "Next": "Finalize",
        **fields,
    }


def output(execution: dict[str, Any]) -> Any:
    return json.loads(execution["output"])


# ------------------------------------------------------------------------------------- Map children
def test_a_failed_distributed_map_child_fails_the_map_and_its_catch_runs(cloud: Cloud) -> None:
    fail = cloud.function("fail")
    chunks = caught(distributed_map({"Work": task(fail, End=True)}, "Work"))
    definition = {"StartAt": "Chunks", "States": {"Chunks": chunks, "Finalize": FINALIZE}}

    execution = cloud.run(definition, {"items": [{}, {"fail": True}, {}]})

    assert execution["status"] == "SUCCEEDED"
    fault = output(execution)["fault"]
    assert fault["Error"] == "States.ExceedToleratedFailureThreshold"
    assert fault["Cause"] == stepfunctions_map.TOLERATED_FAILURE_CAUSE


def test_a_distributed_map_tolerates_as_many_failed_children_as_it_declares(cloud: Cloud) -> None:
    fail = cloud.function("fail")
    chunks = caught(distributed_map({"Work": task(fail, End=True)}, "Work", ToleratedFailureCount=1))
    definition = {"StartAt": "Chunks", "States": {"Chunks": chunks, "Finalize": FINALIZE}}

    tolerated = cloud.run(definition, {"items": [{}, {"fail": True}, {}]})
    too_many = cloud.run(definition, {"items": [{"fail": True}, {}, {"fail": True}]})

    assert "fault" not in output(tolerated)
    assert output(too_many)["fault"]["Error"] == "States.ExceedToleratedFailureThreshold"


def test_an_inline_map_fails_with_its_childs_own_error(cloud: Cloud) -> None:
    fail = cloud.function("fail")
    inline = caught(
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "Work", "States": {"Work": task(fail, End=True)}},
            "ResultPath": None,
            "Next": "Finalize",
        }
    )
    definition = {"StartAt": "Chunks", "States": {"Chunks": inline, "Finalize": FINALIZE}}

    execution = cloud.run(definition, {"items": [{}, {"fail": True}]})

    assert output(execution)["fault"]["Error"] == "ValueError"


# ------------------------------------------------------------------------------ Step Functions payloads
def test_a_map_aggregate_over_256_kib_fails_the_execution_even_with_result_path_null(cloud: Cloud) -> None:
    # 100 children of ~3 KB: ~300 KB of aggregated output, which ResultPath null would throw away.
    child = {"Big": {"Type": "Pass", "Parameters": {"blob": "x" * 3000}, "End": True}}
    chunks = caught(distributed_map(child, "Big", MaxConcurrency=10))
    definition = {"StartAt": "Chunks", "States": {"Chunks": chunks, "Finalize": FINALIZE}}

    execution = cloud.run(definition, {"items": [{}] * 100})
    small = cloud.run(definition, {"items": [{}] * 10})

    # Not caught by States.ALL: Finalize never runs, the execution fails.
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.DataLimitExceeded"
    assert small["status"] == "SUCCEEDED"


def test_a_task_result_over_256_kib_fails_the_execution_past_a_states_all_catch(cloud: Cloud) -> None:
    sized = cloud.function("sized")
    definition = {"StartAt": "Work", "States": {"Work": caught(task(sized, Next="Finalize")), "Finalize": FINALIZE}}

    over = cloud.run(definition, {"bytes": 256 * KIB + 1})
    named = {
        "StartAt": "Work",
        "States": {
            "Work": {
                **task(sized, Next="Finalize"),
                "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "ResultPath": "$.fault", "Next": "Finalize"}],
            },
            "Finalize": FINALIZE,
        },
    }
    caught_by_name = cloud.run(named, {"bytes": 256 * KIB + 1})

    assert over["status"] == "FAILED"
    assert over["error"] == "States.DataLimitExceeded"
    # A Catcher that names the error does catch it.
    assert output(caught_by_name)["fault"]["Error"] == "States.DataLimitExceeded"


def test_a_state_output_of_exactly_256_kib_is_allowed_and_one_byte_more_is_not(cloud: Cloud) -> None:
    def pass_of(size: int) -> dict[str, Any]:
        blob = "x" * (size - len('{"b":""}'))
        return {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"b": blob}, "End": True}}}

    at_limit = cloud.run(pass_of(256 * KIB), {})
    over = cloud.run(pass_of(256 * KIB + 1), {})

    assert at_limit["status"] == "SUCCEEDED"
    assert len(at_limit["output"].replace(" ", "")) == 256 * KIB
    assert over["status"] == "FAILED"
    assert over["error"] == "States.DataLimitExceeded"


def test_a_lambda_payload_over_256_kib_from_step_functions_fails_before_the_invocation(cloud: Cloud) -> None:
    echo = cloud.function("echo")
    doubled = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        # 2 x 150 KB: each input is fine, the task's Parameters are not.
        "Parameters": {"FunctionName": echo, "Payload": {"a.$": "$.s", "b.$": "$.s"}},
        "ResultPath": None,
        "Next": "Finalize",
    }
    definition = {"StartAt": "Work", "States": {"Work": caught(doubled), "Finalize": FINALIZE}}

    execution = cloud.run(definition, {"s": "y" * 150_000})

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.DataLimitExceeded"


# --------------------------------------------------------------------------------- execution limits
HISTORY_LIMIT = ("States.Runtime", "The execution reached the maximum number of history events (25000).")
# A state that only ever goes back to itself: every visit is two events, and nothing but the limit ends it.
FOREVER = {"StartAt": "Again", "States": {"Again": {"Type": "Pass", "Next": "Again"}}}
# ExecutionStarted and 12,499 visits are 24,999 events: the next visit would have been the 25,000th.
VISITS_TO_THE_LIMIT = 12_500


def test_an_execution_input_over_256_kib_is_refused_at_start(cloud: Cloud) -> None:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = cloud.sfn.create_state_machine(name="sm", definition=json.dumps(definition), roleArn=cloud.role)
    over = json.dumps({"s": "x" * (256 * KIB)})

    # The hook every call of the local cloud goes through (localcloud.iam) holds the quotas.
    with installed(iam), pytest.raises(ClientError) as refused:
        cloud.sfn.start_execution(stateMachineArn=arn["stateMachineArn"], name="big", input=over)

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert cloud.sfn.list_executions(stateMachineArn=arn["stateMachineArn"])["executions"] == []


def test_an_execution_fails_when_its_history_reaches_25000_events(cloud: Cloud) -> None:
    before = metering.snapshot()

    execution = cloud.run(FOREVER, {})

    assert execution["status"] == "FAILED"
    assert (execution["error"], execution["cause"]) == HISTORY_LIMIT
    # (moto answers GetExecutionHistory whole, 25,000 events in some ten seconds: its visits tell the count.)
    assert metering.difference(metering.snapshot(), before)["state_transitions"] == {"Again": VISITS_TO_THE_LIMIT}


def test_a_distributed_map_child_has_a_history_of_its_own_and_fails_alone_at_its_limit(cloud: Cloud) -> None:
    forever = distributed_map(FOREVER["States"], "Again")
    definition = {"StartAt": "Chunks", "States": {"Chunks": caught(forever), "Finalize": FINALIZE}}
    before = metering.snapshot()

    execution = cloud.run(definition, {"items": [{}]})

    # The child failed at its own limit; the parent, a few events long, caught the Map's failure.
    assert execution["status"] == "SUCCEEDED"
    assert output(execution)["fault"]["Error"] == "States.ExceedToleratedFailureThreshold"
    counted = metering.difference(metering.snapshot(), before)["state_transitions"]
    assert counted == {"Chunks": 1, "Again": VISITS_TO_THE_LIMIT, "Finalize": 1}


def test_the_last_place_in_a_history_is_kept_for_the_executions_end() -> None:
    last = stepfunctions_history.MAX_HISTORY_EVENTS - 1

    assert stepfunctions_history.history_admits(last - 1, "PassStateEntered")
    assert not stepfunctions_history.history_admits(last, "PassStateEntered")
    assert stepfunctions_history.history_admits(last, "ExecutionSucceeded")
    assert stepfunctions_history.history_admits(last, "ExecutionFailed")
    assert not stepfunctions_history.history_admits(last + 1, "ExecutionSucceeded")


# ------------------------------------------------------------------------------------- Lambda limits
def test_a_lambda_request_over_6_mb_is_refused_with_413(cloud: Cloud) -> None:
    echo = cloud.function("echo")
    at_limit = json.dumps({"s": "z" * (lambda_limits.MAX_PAYLOAD_BYTES - len('{"s": ""}'))}).encode()
    over = at_limit.replace(b'"}', b'z"}')

    with pytest.raises(ClientError) as refused:
        cloud.lam.invoke(FunctionName=echo, Payload=over)

    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_a_lambda_response_over_6_mb_is_a_function_error(cloud: Cloud) -> None:
    sized = cloud.function("sized")

    answer = cloud.lam.invoke(FunctionName=sized, Payload=json.dumps({"bytes": lambda_limits.MAX_PAYLOAD_BYTES + 1}))

    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"


def test_an_invocation_beyond_reserved_concurrency_is_throttled(cloud: Cloud, gate: ModuleType) -> None:
    held = cloud.function("held", reserved=1)
    first: dict[str, Any] = {}
    in_flight = threading.Thread(target=lambda: first.update(cloud.lam.invoke(FunctionName=held, Payload=b"{}")))
    in_flight.start()
    assert gate.entered.wait(10)  # type: ignore[attr-defined]

    with pytest.raises(ClientError) as throttled:
        cloud.lam.invoke(FunctionName=held, Payload=b"{}")
    gate.release.set()  # type: ignore[attr-defined]
    in_flight.join(10)
    again = cloud.lam.invoke(FunctionName=held, Payload=b"{}")

    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert json.loads(first["Payload"].read()) == {"held": True}
    assert "FunctionError" not in again
    assert lambdas.limits.throttled[held.rsplit(":", 1)[-1]] == 1


def test_unreserved_functions_share_what_the_account_limit_leaves(cloud: Cloud, gate: ModuleType) -> None:
    lambdas.limits.reset(account_limit=102)
    held = cloud.function("held")
    echo = cloud.function("echo")
    cloud.function("echo", reserved=2)  # leaves 100 for the others, the least Lambda allows
    in_flight = threading.Thread(target=lambda: cloud.lam.invoke(FunctionName=held, Payload=b"{}"))
    in_flight.start()
    assert gate.entered.wait(10)  # type: ignore[attr-defined]

    with lambdas.limits.hold("other-workloads", 99), pytest.raises(ClientError) as throttled:
        cloud.lam.invoke(FunctionName=echo, Payload=b"{}")
    gate.release.set()  # type: ignore[attr-defined]
    in_flight.join(10)

    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert "FunctionError" not in cloud.lam.invoke(FunctionName=echo, Payload=b"{}")


def test_step_functions_sees_a_throttled_invocation_as_lambda_too_many_requests(cloud: Cloud) -> None:
    disabled = cloud.function("echo", reserved=0)  # reserved concurrency 0 throttles every invocation
    definition = {"StartAt": "Work", "States": {"Work": caught(task(disabled, Next="Finalize")), "Finalize": FINALIZE}}

    execution = cloud.run(definition, {})

    assert output(execution)["fault"]["Error"] == "Lambda.TooManyRequestsException"


def test_a_reservation_that_leaves_less_than_100_unreserved_is_refused_as_lambda_refuses_it(cloud: Cloud) -> None:
    lambdas.limits.reset(account_limit=1000)
    first = cloud.function("echo", reserved=890)
    cloud.function("fail", reserved=10)  # 100 left unreserved: the least Lambda allows

    with pytest.raises(ClientError) as refused:
        cloud.function("sized", reserved=1)
    # A function's new reservation replaces its own old one.
    cloud.lam.put_function_concurrency(FunctionName=first, ReservedConcurrentExecutions=889)

    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"] == (
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [100]."
    )


# --------------------------------------------------------------------------------- retry and wait scale
def test_retry_intervals_are_scaled_only_when_asked(cloud: Cloud) -> None:
    fail = cloud.function("fail")
    # 3 retries of 100 s each would take five minutes unscaled; at 0.001 they take 0.3 s.
    retried = task(fail, Next="Finalize", Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 100,
                                                  "BackoffRate": 1, "MaxAttempts": 3}])  # fmt: skip
    definition = {"StartAt": "Work", "States": {"Work": caught(retried), "Finalize": FINALIZE}}

    execution = cloud.run(definition, {"fail": True})

    assert output(execution)["fault"]["Error"] == "ValueError"
    history = cloud.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    assert sum(e["type"] == "TaskFailed" for e in history) == 4


def test_a_wait_state_waits_its_seconds_path_scaled_as_asked_and_goes_on(cloud: Cloud) -> None:
    # 30 s unscaled; at 0.001, 30 ms. moto's Wait measures what it waited in whole seconds against what it
    # was asked: scaled by a sleep alone, a wait that is short of its seconds would start again, forever.
    waited = {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Finalize"}
    definition = {"StartAt": "Idle", "States": {"Idle": waited, "Finalize": FINALIZE}}
    began = time.monotonic()

    execution = cloud.run(definition, {"wait": 30})

    assert execution["status"] == "SUCCEEDED"
    assert time.monotonic() - began < 10
    history = cloud.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    assert [e["type"] for e in history if e["type"].startswith("Wait")] == ["WaitStateEntered", "WaitStateExited"]


# --------------------------------------------------------------------------------------------- metering
def test_every_state_entered_and_every_retry_is_a_transition_and_every_invocation_is_billed(cloud: Cloud) -> None:
    """As AWS bills a Standard workflow: Map children's states count, and so does each retry attempt."""
    flaky, echo = cloud.function("flaky"), cloud.function("echo")
    retried = task(flaky, ResultPath=None, Next="Chunks",
                   Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}])  # fmt: skip
    children = {"Echo": task(echo, Next="Done"), "Done": {"Type": "Succeed", "OutputPath": None}}
    definition = {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Next": "Work"},
            "Work": retried,
            "Chunks": distributed_map(children, "Echo"),
            "Finalize": FINALIZE,
        },
    }
    before = metering.snapshot()

    execution = cloud.run(definition, {"items": [{}, {}, {}]})

    counted = metering.difference(metering.snapshot(), before)
    assert execution["status"] == "SUCCEEDED"
    assert counted["state_transitions"] == {"Init": 1, "Work": 2, "Chunks": 1, "Echo": 3, "Done": 3, "Finalize": 1}
    invocations = {name: usage["invocations"] for name, usage in counted["lambda"].items()}
    assert invocations == {"fn-flaky-0": 2, "fn-echo-1": 3}
    assert all(usage["billed_ms"] >= usage["invocations"] for usage in counted["lambda"].values())
    assert {usage["memory_mb"] for usage in counted["lambda"].values()} == {128}


def test_tasks_reuse_one_lambda_client(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's interpreter built a boto3 client for every Task it ran: CPU and memory per invocation."""
    echo = cloud.function("echo")
    children = {"Echo": task(echo, End=True)}
    definition = {"StartAt": "Chunks", "States": {"Chunks": distributed_map(children, "Echo"), "Finalize": FINALIZE}}
    made: list[str] = []
    real_client = boto3.client

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("service_name") or args[0])
        return real_client(*args, **kwargs)

    monkeypatch.setattr(boto3, "client", counted)
    for _ in range(2):
        assert cloud.run(definition, {"items": [{}, {}, {}]})["status"] == "SUCCEEDED"
    monkeypatch.undo()
    assert made.count("lambda") <= 1
