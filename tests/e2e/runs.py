"""Helpers for e2e batch runs: submit lines with the SDK, wait for the end, read both result files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from openai import OpenAI
from openai.types import Batch

from batchline.config import MAX_DIRECT_UPLOAD_BYTES
from batchline.models import ENDPOINTS

TERMINAL = ("completed", "failed", "cancelled", "expired")


def request_line(custom_id: str, url: str, text: str, **extra: Any) -> dict[str, Any]:
    """A request line for any of the five endpoints, carrying `text` where the endpoint reads it."""
    body: dict[str, Any] = {
        "/v1/chat/completions": {"messages": [{"role": "user", "content": text}]},
        "/v1/completions": {"prompt": text},
        "/v1/embeddings": {"input": text},
        "/v1/responses": {"input": text},
        "/v1/moderations": {"input": text},
    }[url]
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": {**body, **extra}}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@dataclass
class Run:
    batch: Batch
    output: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    @property
    def raw(self) -> dict[str, Any]:
        return self.batch.model_dump()


# The api function's direct upload limit (the template's default MaxUploadBytes), also the part size.
DIRECT_UPLOAD_BYTES = MAX_DIRECT_UPLOAD_BYTES


def upload(client: OpenAI, data: bytes) -> str:
    """A batch input file's id: a direct upload when small, the Uploads API when not."""
    if len(data) <= DIRECT_UPLOAD_BYTES:
        return client.files.create(file=("requests.jsonl", data), purpose="batch").id
    done = client.uploads.upload_file_chunked(
        file=data, filename="requests.jsonl", bytes=len(data), mime_type="application/jsonl",
        purpose="batch", part_size=DIRECT_UPLOAD_BYTES,
    )  # fmt: skip
    assert done.file is not None
    return done.file.id


def submit(client: OpenAI, data: bytes, *, endpoint: str, job_id: str, window: str = "24h") -> Batch:
    return client.batches.create(
        input_file_id=upload(client, data),
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window=window,  # type: ignore[arg-type]
        extra_body={"job_id": job_id},
    )


def wait(client: OpenAI, batch_id: str, *, timeout: float = 120.0, until: tuple[str, ...] = TERMINAL) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch still {batch.status} after {timeout} s: {batch}")
        time.sleep(0.1)


def results(client: OpenAI, batch: Batch) -> Run:
    def read(file_id: str | None) -> list[dict[str, Any]]:
        if file_id is None:
            return []
        return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]

    return Run(batch, read(batch.output_file_id), read(batch.error_file_id))


def run(client: OpenAI, data: bytes, **kwargs: Any) -> Run:
    batch = submit(client, data, **kwargs)
    return results(client, wait(client, batch.id))


def create_tenant(base_url: str, admin_key: str, name: str) -> dict[str, str]:
    """An admin-created tenant: its id and its first API key."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    answer = httpx.post(f"{base_url}/admin/tenants", headers=admin, json={"name": name})
    answer.raise_for_status()
    created = answer.json()
    return {"id": created["id"], "key": created["api_key"]["key"]}


def create_job(base_url: str, admin_key: str, tenant: str, **fields: Any) -> str:
    """An admin-created job for the tenant (the SDK has no jobs resource)."""
    body = {
        "tenant": tenant,
        "model": "test-model",
        "allowed_endpoints": list(ENDPOINTS),
        "price_1m_tokens": 0.5,
        **fields,
    }
    answer = httpx.post(f"{base_url}/jobs", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    answer.raise_for_status()
    return str(answer.json()["id"])


def assert_each_line_once_in_order(run_: Run, custom_ids: list[str]) -> None:
    """Every input line is in exactly one of the two files, once, and each file keeps input order."""
    out_ids = [line["custom_id"] for line in run_.output]
    err_ids = [line["custom_id"] for line in run_.errors]
    assert sorted(out_ids + err_ids) == sorted(custom_ids)
    assert len(set(out_ids + err_ids)) == len(custom_ids)
    position = {custom_id: i for i, custom_id in enumerate(custom_ids)}
    assert [position[c] for c in out_ids] == sorted(position[c] for c in out_ids)
    assert [position[c] for c in err_ids] == sorted(position[c] for c in err_ids)
    counts = run_.batch.request_counts
    assert counts is not None
    assert (counts.total, counts.completed, counts.failed) == (len(custom_ids), len(out_ids), len(err_ids))


def usage_of(lines: list[dict[str, Any]]) -> tuple[int, int, int]:
    prompt = completion = total = 0
    for line in lines:
        usage = line["response"]["body"].get("usage", {})
        p = usage.get("prompt_tokens", usage.get("input_tokens", 0))
        c = usage.get("completion_tokens", usage.get("output_tokens", 0))
        prompt, completion, total = prompt + p, completion + c, total + usage.get("total_tokens", p + c)
    return prompt, completion, total
