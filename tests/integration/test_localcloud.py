"""The local cloud: template.yaml deployed into moto's server, Lambdas run in-process through moto."""

from __future__ import annotations

import io
import json
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from localcloud import lambda_code, lambdas
from localcloud.cloud import LocalCloud
from localcloud.deploy import deploy
from localcloud.lambdas import LocalFunction
from localcloud.template import loads_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    # No uvicorn and no demo data unless a test asks: the module stays fast.
    with LocalCloud(serve_api=False, seed=False) as running:
        yield running


@pytest.fixture
def role_arn(cloud: LocalCloud) -> str:
    """A role moto lets Lambda assume: the api function's."""
    api = cloud.stack.function("ApiFunction")
    return str(cloud.client("lambda").get_function_configuration(FunctionName=api.name)["Role"])


def _invoke(cloud: LocalCloud, function_name: str, event: Any) -> tuple[dict[str, Any], Any]:
    response = cloud.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
    return response, json.loads(response["Payload"].read())


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, textwrap.dedent(text))
    return buffer.getvalue()


def _wait_for_execution(sfn: Any, arn: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        assert time.monotonic() < deadline, f"execution {arn} still RUNNING"
        time.sleep(0.05)


def test_short_tags_parse_to_their_long_forms() -> None:
    template = loads_template(
        textwrap.dedent(
            """
            Version: 2012-10-17
            A: !Ref Table
            B: !GetAtt FilesBucket.Arn
            C: !Sub "${FilesBucket.Arn}/*"
            D: !Join [",", [a, !Ref B]]
            """
        )
    )
    assert template == {
        "Version": "2012-10-17",
        "A": {"Ref": "Table"},
        "B": {"Fn::GetAtt": ["FilesBucket", "Arn"]},
        "C": {"Fn::Sub": "${FilesBucket.Arn}/*"},
        "D": {"Fn::Join": [",", ["a", {"Ref": "B"}]]},
    }


def test_the_template_deploys_with_table_bucket_and_api_function(cloud: LocalCloud) -> None:
    stack = cloud.stack
    assert stack.status == "CREATE_COMPLETE"
    table, bucket = stack.physical_id("Table"), stack.physical_id("FilesBucket")
    assert cloud.client("dynamodb").describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
    cloud.client("s3").head_bucket(Bucket=bucket)
    assert stack.outputs["TableName"] == table

    api = stack.function("ApiFunction")
    assert api.code_dir == ROOT / "functions" / "api"
    assert ROOT / "layers" / "core" in api.layer_dirs
    config = cloud.client("lambda").get_function_configuration(FunctionName=api.name)
    assert config["Handler"] == api.handler == "app.lambda_handler"
    variables = config["Environment"]["Variables"]
    assert variables["TABLE_NAME"] == api.environment["TABLE_NAME"] == table
    assert variables["BUCKET_NAME"] == api.environment["BUCKET_NAME"] == bucket

    # API Gateway is left out (uvicorn serves the API locally), and recorded as such.
    assert "HttpApi" in stack.removed
    assert not any(kind.startswith("AWS::ApiGateway") for kind in stack.resource_types.values())


def test_the_templates_state_machines_are_registered_where_they_execute(cloud: LocalCloud) -> None:
    stack = cloud.stack
    declared = {k for k, kind in stack.resource_types.items() if kind == "AWS::StepFunctions::StateMachine"}
    assert set(stack.state_machines) == declared
    sfn = cloud.client("stepfunctions")
    for logical_id, arn in stack.state_machines.items():
        # Same ARN as the stack's Ref, so functions' STATE_MACHINE_ARN-style variables point at it.
        assert arn == stack.physical_id(logical_id)
        definition = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition, f"{logical_id} kept unsubstituted placeholders"
        json.loads(definition)
    referenced = {v for f in stack.functions.values() for v in f.environment.values() if ":states:" in v}
    assert referenced <= set(stack.state_machines.values())
    assert not any(key.startswith("LocalCloudBridge") for key in stack.outputs)


def test_the_api_function_answers_an_http_api_event_through_moto(cloud: LocalCloud) -> None:
    event = json.loads((EVENTS / "api_get_file.json").read_text())
    assert "authorization" not in event["headers"]

    response, payload = _invoke(cloud, cloud.stack.function("ApiFunction").name, event)

    assert "FunctionError" not in response, payload
    assert payload["statusCode"] == 401
    body = json.loads(payload["body"])
    assert body["error"]["type"] == "authentication_error"


def test_a_raising_handler_becomes_lambdas_error_payload(cloud: LocalCloud, role_arn: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            class QuotaExceeded(Exception):
                pass

            def handler(event, context):
                raise QuotaExceeded(f"over quota with {context.get_remaining_time_in_millis() > 0}")
            """
        )
    )
    name = "localcloud-test-raiser"
    created = cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": _zip({"app.py": "def handler(event, context): ...\n"})},
        Timeout=5,
    )
    lambdas.register(
        LocalFunction(
            logical_id="Raiser",
            name=name,
            arn=created["FunctionArn"],
            handler="app.handler",
            code_dir=tmp_path,
            timeout=5,
        )
    )

    response, payload = _invoke(cloud, name, {"any": "thing"})

    assert response["FunctionError"]
    assert payload["errorType"] == "QuotaExceeded"
    assert payload["errorMessage"] == "over quota with True"
    assert any("app.py" in frame for frame in payload["stackTrace"])


def test_an_unregistered_function_runs_the_code_moto_stores(cloud: LocalCloud, role_arn: str) -> None:
    code = _zip(
        {
            "echo.py": """
            import os

            def handler(event, context):
                return {"event": event, "greeting": os.environ["GREETING"], "name": context.function_name}
            """
        }
    )
    cloud.client("lambda").create_function(
        FunctionName="localcloud-test-echo",
        Runtime="python3.13",
        Role=role_arn,
        Handler="echo.handler",
        Code={"ZipFile": code},
        Environment={"Variables": {"GREETING": "hello"}},
    )

    response, payload = _invoke(cloud, "localcloud-test-echo", {"n": 1})

    assert "FunctionError" not in response
    assert payload == {"event": {"n": 1}, "greeting": "hello", "name": "localcloud-test-echo"}


BRIDGES_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Shout:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: app.handler
      Runtime: python3.13
      Environment:
        Variables:
          SHOUT_SUFFIX: "!"
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: flow.asl.json
      DefinitionSubstitutions:
        ShoutArn: !GetAtt Shout.Arn
      Policies:
        - LambdaInvokePolicy:
            FunctionName: !Ref Shout
  Inbox:
    Type: AWS::SQS::Queue
  Drop:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Queue: !GetAtt Inbox.Arn
            Filter:
              S3Key:
                Rules:
                  - Name: prefix
                    Value: inbox/
  Token:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString:
        PasswordLength: 20
        ExcludePunctuation: true
Outputs:
  TokenArn:
    Value: !Ref Token
"""

FLOW = {
    "StartAt": "Shout",
    "States": {
        "Shout": {
            "Type": "Task",
            "Resource": "${ShoutArn}",
            "Catch": [{"ErrorEquals": ["Boom"], "Next": "Caught"}],
            "End": True,
        },
        "Caught": {"Type": "Pass", "Result": {"caught": True}, "End": True},
    },
}

SHOUT = """
import os


class Boom(Exception):
    pass


def handler(event, context):
    if event.get("boom"):
        raise Boom("asked to")
    return {"shout": event["word"].upper() + os.environ["SHOUT_SUFFIX"]}
"""


def test_state_machines_notifications_and_secrets_are_bridged(cloud: LocalCloud, tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(BRIDGES_TEMPLATE)
    (tmp_path / "flow.asl.json").write_text(json.dumps(FLOW))
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(SHOUT)

    stack = deploy(tmp_path / "template.yaml", cloud.client, stack_name="bridges")

    # The state machine runs with its substitutions applied; errorType is the Step Functions error.
    sfn = cloud.client("stepfunctions")
    machine = stack.state_machines["Flow"]
    assert machine == stack.physical_id("Flow")
    ok = sfn.start_execution(stateMachineArn=machine, name="ok", input=json.dumps({"word": "hi"}))
    boom = sfn.start_execution(stateMachineArn=machine, name="boom", input=json.dumps({"boom": True}))
    done = _wait_for_execution(sfn, ok["executionArn"])
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {"shout": "HI!"}
    caught = _wait_for_execution(sfn, boom["executionArn"])
    assert caught["status"] == "SUCCEEDED", caught
    assert json.loads(caught["output"]) == {"caught": True}

    # The bucket's NotificationConfiguration reaches the queue (keys arrive URL-encoded).
    cloud.client("s3").put_object(Bucket=stack.physical_id("Drop"), Key="inbox/a b.jsonl", Body=b"{}\n")
    cloud.client("s3").put_object(Bucket=stack.physical_id("Drop"), Key="elsewhere/c.jsonl", Body=b"{}\n")
    messages = cloud.client("sqs").receive_message(
        QueueUrl=stack.physical_id("Inbox"), MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    # As in S3, configuring the notification first sends an s3:TestEvent without Records.
    bodies = [json.loads(m["Body"]) for m in messages]
    keys = [unquote_plus(r["s3"]["object"]["key"]) for body in bodies for r in body.get("Records", [])]
    assert keys == ["inbox/a b.jsonl"]

    # The secret moto's CloudFormation cannot create exists, and references to it resolve.
    secret = cloud.client("secretsmanager").get_secret_value(SecretId=stack.outputs["TokenArn"])
    assert len(secret["SecretString"]) == 20
    assert stack.emulated["Token"] == secret["ARN"]


def test_the_api_is_served_over_http(cloud: LocalCloud) -> None:
    cloud.serve_api()
    request = urllib.request.Request(f"{cloud.base_url}/files/file-doesnotexist")  # noqa: S310  # loopback

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310  # our own loopback server

    assert answer.value.code == 401
    assert json.loads(answer.value.read())["error"]["type"] == "authentication_error"


def test_every_functions_handler_is_imported_before_any_invocation(cloud: LocalCloud) -> None:
    """Imported at start in one thread, so moto's request threads never import a handler next to the caller."""
    for function in cloud.stack.functions.values():
        path, _ = lambda_code.handler_file(function)
        assert path in lambda_code._modules, f"{function.logical_id} is imported only when first invoked"


def test_the_demo_imports_the_sdks_lazy_parts_before_it_starts_threads() -> None:
    """The demo (like the e2e tests' conftest) leaves no lazily imported SDK module to its threads."""
    import subprocess
    import sys

    code = (
        "import sys, localcloud.demo; from localcloud.preload import SDK_MODULES; "
        "print([m for m in SDK_MODULES if m not in sys.modules])"
    )
    answer = subprocess.run(  # noqa: S603  # this interpreter, our own code
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "[]"


def test_s3_keeps_an_objects_bytes_in_a_file_not_in_the_process_memory(cloud: LocalCloud) -> None:
    """moto holds every object under 5 MB in memory: the local cloud's RSS grew with each batch's parts."""
    from moto.s3.models import s3_backends

    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="spooled")
    large, small = bytes(range(256)) * 1024, b"{}\n"
    s3.put_object(Bucket="spooled", Key="large", Body=large)
    s3.put_object(Bucket="spooled", Key="small", Body=small)
    keys = s3_backends["123456789012"]["aws"].buckets["spooled"].keys
    assert keys["large"]._value_buffer._rolled
    # A small object stays in memory: a file per object would cost an open descriptor each.
    assert not keys["small"]._value_buffer._rolled
    assert s3.get_object(Bucket="spooled", Key="large")["Body"].read() == large
    assert s3.get_object(Bucket="spooled", Key="large", Range="bytes=1000-1999")["Body"].read() == large[1000:2000]
