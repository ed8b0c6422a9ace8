"""The batch state machine's Distributed Map within Step Functions' limits, from the real ASL and planning.

The real `Chunks` state of statemachine/batch.asl.json runs on moto (with the local cloud's AWS limits)
over the manifest that the real planning code makes for the worst case the template allows: the
largest batch (50,000 lines) at the smallest LinesPerChunk. Its worker is trivial (each chunk done in
one invocation), because what is measured is the Map's aggregated child output, not the work.

moto runs about 40 children a second here (2,000 take ~55 s), too slow to run thousands in a test, so
the Map runs over a sample of the worst-case manifest (its first and last items: the largest numbers)
and the aggregate of all of it is bounded by items x (largest child output + a comma) + brackets.
"""

from __future__ import annotations

import io
import json
import textwrap
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchline.planning import plan_batch
from localcloud import lambdas, stepfunctions, stepfunctions_payloads
from localcloud.deploy import DeployError, check_parameters
from localcloud.lambdas import LocalFunction
from localcloud.patching import installed
from localcloud.template import load_template

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "batch.asl.json"
URL = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
MAX_LINES = 50_000  # the largest batch plan_batch accepts (max_requests), as OpenAI's Batch API
BUCKET = "files"
SAMPLE = 20
WORKER = """
def lambda_handler(event, context):
    # The real worker's answer, every key the ASL reads (WorkerOutput, dumped whole).
    return {"cursor": event["chunk"]["line_count"], "offset": None, "done": True, "wait": None}
"""


def worst_case_manifest(lines_per_chunk: int) -> list[dict[str, Any]]:
    """The manifest the real planner writes for the largest batch at `lines_per_chunk`."""
    body = {"messages": [{"role": "user", "content": "hi"}]}
    line = lambda i: json.dumps({"custom_id": f"r{i}", "method": "POST", "url": URL, "body": body}) + "\n"  # noqa: E731
    data = "".join(line(i) for i in range(MAX_LINES)).encode()
    planned = plan_batch(io.BytesIO(data), endpoint=URL, model=MODEL, lines_per_chunk=lines_per_chunk)
    assert planned.ok and planned.total == MAX_LINES
    return [asdict(chunk) for chunk in planned.chunks]


def chunks_state(worker_arn: str) -> dict[str, Any]:
    """The real Map state, its substitutions made; its result kept at $.aggregate so it can be measured."""
    text = ASL.read_text()
    for key, value in {"WorkerFunctionArn": worker_arn, "FilesBucket": BUCKET}.items():
        text = text.replace("${" + key + "}", value)
    state: dict[str, Any] = json.loads(text)["States"]["Chunks"]
    # What the Map aggregates does not depend on where ResultPath puts it (the limit applies before).
    return {**state, "ResultPath": "$.aggregate"}


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[dict[str, Any]]:
    (tmp_path / "app.py").write_text(textwrap.dedent(WORKER))
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), installed(lambdas, stepfunctions):
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", WORKER)
        arn = boto3.client("lambda").create_function(
            FunctionName="worker", Runtime="python3.13", Role=role, Handler="app.lambda_handler",
            Code={"ZipFile": buffer.getvalue()}, Timeout=900,
        )["FunctionArn"]  # fmt: skip
        lambdas.register(LocalFunction(logical_id="WorkerFunction", name="worker", arn=arn,
                                       handler="app.lambda_handler", code_dir=tmp_path, timeout=900))  # fmt: skip
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield {"role": role, "worker": arn}


def run_map(aws: dict[str, Any], manifest: list[dict[str, Any]]) -> dict[str, Any]:
    boto3.client("s3").put_object(Bucket=BUCKET, Key="work/b/manifest.json", Body=json.dumps(manifest).encode())
    definition = {
        "StartAt": "Chunks",
        "States": {"Chunks": chunks_state(aws["worker"]), "Finalize": {"Type": "Pass", "End": True}},
    }
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name="batch", definition=json.dumps(definition), roleArn=aws["role"])
    plan = {"status": "in_progress", "manifest_key": "work/b/manifest.json", "max_concurrency": 50, "job_id": "j"}
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"],
        name="b",
        input=json.dumps({"batch_id": "b", "fault": None, "plan": plan}),
    )
    deadline = time.monotonic() + 600
    while (execution := sfn.describe_execution(executionArn=started["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the Map is still running"
        time.sleep(0.1)
    return execution  # type: ignore[no-any-return]


def test_the_maps_aggregate_stays_far_below_256_kib_at_the_worst_case_the_template_allows(
    aws: dict[str, Any],
) -> None:
    smallest = int(load_template(ROOT / "template.yaml")["Parameters"]["LinesPerChunk"]["MinValue"])
    manifest = worst_case_manifest(smallest)
    sample = manifest[:SAMPLE] + manifest[-SAMPLE:]

    execution = run_map(aws, sample)

    assert execution["status"] == "SUCCEEDED", execution.get("error")
    result = json.loads(execution["output"])
    assert result["fault"] is None
    outputs = [len(json.dumps(child, separators=(",", ":")).encode()) for child in result["aggregate"]]
    assert len(outputs) == len(sample)
    bound = len(manifest) * (max(outputs) + 1) + 1
    # One-line chunks are the worst case: 50,000 children of `{}` come to about 150 KB, still under the limit.
    assert bound < stepfunctions_payloads.MAX_PAYLOAD_BYTES, f"{len(manifest)} chunks of up to {max(outputs)} bytes"


def test_a_lines_per_chunk_below_the_templates_minimum_is_refused_at_deploy_time() -> None:
    declared = load_template(ROOT / "template.yaml")["Parameters"]
    check_parameters(declared, {"LinesPerChunk": "1"})

    with pytest.raises(DeployError, match="Parameter 'LinesPerChunk' must be a number not less than 1"):
        check_parameters(declared, {"LinesPerChunk": "0"})
    with pytest.raises(DeployError, match="do not exist"):
        check_parameters(declared, {"LinesPerChunks": "100"})
