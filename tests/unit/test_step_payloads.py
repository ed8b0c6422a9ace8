"""The Step Functions payload models against the ASL that sends and reads them, and the manifest they carry."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from batchline.models import (
    FinalizeInput,
    FinalizeOutput,
    PlanInput,
    PlanOutput,
    WorkerInput,
    WorkerOutput,
)
from batchline.planning import plan_batch

ROOT = Path(__file__).resolve().parents[2]
STATES: dict[str, Any] = json.loads((ROOT / "statemachine" / "batch.asl.json").read_text())["States"]
WORK: dict[str, Any] = STATES["Chunks"]["ItemProcessor"]["States"]["Work"]
TASKS = [
    (STATES["Plan"], PlanInput, PlanOutput),
    (WORK, WorkerInput, WorkerOutput),
    (STATES["Finalize"], FinalizeInput, FinalizeOutput),
]


def _key(name: str) -> str:
    return name.removesuffix(".$")


@pytest.mark.parametrize(("state", "given", "answer"), TASKS)
def test_each_task_model_has_the_keys_the_asl_sends_and_reads(
    state: dict[str, Any], given: type[BaseModel], answer: type[BaseModel]
) -> None:
    sent = {_key(name) for name in state["Parameters"]["Payload"]}
    read = {_key(name): path for name, path in state["ResultSelector"].items()}

    assert set(given.model_fields) == sent
    assert set(answer.model_fields) == set(read)
    assert all(path == f"$.Payload.{name}" for name, path in read.items())


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        (
            PlanOutput,
            {"status": "in_progress", "manifest_key": "work/b/manifest.json", "max_concurrency": 4, "job_id": "job_1"},
        ),
        (PlanOutput, {"status": "failed", "manifest_key": None, "max_concurrency": 1, "job_id": "job_1"}),
        (WorkerOutput, {"cursor": 40, "offset": 8192, "done": False, "wait": None}),
        (WorkerOutput, {"cursor": 40, "offset": None, "done": True, "wait": None}),
        (WorkerOutput, {"cursor": 40, "offset": 8192, "done": False, "wait": 30}),
        (FinalizeOutput, {"status": "completed"}),
    ],
)
def test_an_answer_is_dumped_as_the_core_gave_it_null_included(model: type[BaseModel], answer: dict[str, Any]) -> None:
    # ResultSelector fails the state on a path that finds nothing: a null manifest_key must stay.
    assert json.dumps(model.model_validate(answer).model_dump(mode="json")) == json.dumps(answer)


def test_a_worker_answer_without_a_wait_still_has_the_key_the_asl_reads() -> None:
    # The core's answer names `wait` only when the worker left for want of a share; ResultSelector reads it always.
    dumped = WorkerOutput.model_validate({"cursor": 40, "offset": 8192, "done": False}).model_dump(mode="json")

    assert dumped == {"cursor": 40, "offset": 8192, "done": False, "wait": None}


@pytest.mark.parametrize(("name", "model"), [("plan", PlanInput), ("worker", WorkerInput), ("finalize", FinalizeInput)])
def test_the_sample_events_are_valid_payloads(name: str, model: type[BaseModel]) -> None:
    event = json.loads((ROOT / "events" / f"{name}.json").read_text())

    assert model.model_validate(event).model_dump(mode="json") == event


def test_a_manifest_item_is_a_workers_chunk_unchanged() -> None:
    line = {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}
    data = (json.dumps(line) + "\n" + json.dumps({**line, "custom_id": "b"}) + "\r\n").encode()
    planned = plan_batch(io.BytesIO(data), endpoint="/v1/embeddings", model=None, lines_per_chunk=1)
    manifest = json.loads(json.dumps([asdict(chunk) for chunk in planned.chunks]))

    for item, chunk in zip(manifest, planned.chunks, strict=True):
        request = WorkerInput.model_validate({"batch_id": "b", "chunk": item, "cursor": 0})
        assert request.chunk == chunk
        assert request.model_dump(mode="json")["chunk"] == item


def test_finalize_takes_the_fault_a_catch_wrote_as_it_is() -> None:
    fault = {"Error": "States.TaskFailed", "Cause": '{"errorMessage": "boom"}'}

    assert FinalizeInput.model_validate({"batch_id": "b", "fault": fault}).fault == fault
    assert FinalizeInput.model_validate({"batch_id": "b", "fault": None}).fault is None
