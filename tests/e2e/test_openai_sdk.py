"""The official openai SDK, unchanged, against the local cloud started like `make local`."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai import OpenAI


@pytest.fixture
def client(local_cloud) -> OpenAI:
    return OpenAI(base_url=local_cloud.base_url, api_key=local_cloud.api_key, max_retries=0)


def requests_jsonl(count: int) -> bytes:
    lines = [
        f'{{"custom_id": "req-{i}", "method": "POST", "url": "/v1/chat/completions", '
        f'"body": {{"messages": [{{"role": "user", "content": "Say {i} \u00e9"}}]}}}}'
        for i in range(count)
    ]
    return ("\r\n".join(lines) + "\n").encode()


def test_upload_create_retrieve_and_read_back_byte_identical(
    client: OpenAI,
    local_cloud,
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(requests_jsonl(25))

    uploaded = client.files.create(file=path.open("rb"), purpose="batch")
    assert uploaded.purpose == "batch"
    assert uploaded.filename == "requests.jsonl"
    assert uploaded.bytes == path.stat().st_size

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"purpose": "e2e"},
        extra_body={"job_id": local_cloud.job_id},
    )
    assert batch.status == "validating"
    assert batch.input_file_id == uploaded.id
    assert batch.metadata == {"purpose": "e2e"}
    assert batch.model_extra is not None
    assert batch.model_extra["job_id"] == local_cloud.job_id

    assert client.files.retrieve(uploaded.id) == uploaded
    fetched = client.batches.retrieve(batch.id)
    assert fetched.id == batch.id
    assert fetched.status in ("validating", "in_progress", "finalizing", "completed")

    assert client.files.content(uploaded.id).content == path.read_bytes()


def test_sdk_raises_its_typed_errors_from_our_error_bodies(client: OpenAI, local_cloud) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve("file-doesnotexist")
    assert missing.value.body["type"] == "not_found_error"  # type: ignore[index]

    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.batches.create(
            input_file_id="file-x",
            endpoint="/v1/chat/completions",
            completion_window="48h",  # type: ignore[arg-type]
            extra_body={"job_id": local_cloud.job_id},
        )
    assert invalid.value.body["param"] == "completion_window"  # type: ignore[index]

    stranger = OpenAI(base_url=local_cloud.base_url, api_key="sk-bl-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.files.retrieve("file-x")


def test_a_script_written_for_openai_runs_unchanged(local_cloud) -> None:
    """tests/e2e/openai_script.py names no job and asks for gpt-4o-mini, as code written for OpenAI does.

    Only OPENAI_BASE_URL and OPENAI_API_KEY point it here (the SDK reads both): sync and async clients,
    upload, create, poll, download, parse every line with the SDK's types, auto-paging, models, cancel.
    """
    import json
    import os
    import subprocess
    import sys

    script = Path(__file__).with_name("openai_script.py")
    env = {**os.environ, "OPENAI_BASE_URL": local_cloud.base_url, "OPENAI_API_KEY": local_cloud.api_key}
    done = subprocess.run(  # noqa: S603  # our own script, with this interpreter
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])

    assert summary["status"] == "completed"
    assert summary["counts"] == {"total": 30, "completed": 30, "failed": 0}
    assert summary["custom_ids"] == [f"task-{i}" for i in range(30)]
    assert summary["models"] == ["mock-llama-3.1-8b"]  # the job's model went upstream, not the alias
    assert summary["usage_input_tokens"] > 0 and summary["usage_total"] > summary["usage_input_tokens"]
    assert summary["cancelled"] in ("cancelling", "cancelled")
    listed = summary["listed"]
    assert len(listed) == len(set(listed)) and {summary["batch_id"], summary["other_id"]} <= set(listed)
    assert "gpt-4o-mini" in summary["model_ids"]
    assert summary["async"][:2] == ["completed", "batch"] and set(summary["async"][2:]) == set(listed)
