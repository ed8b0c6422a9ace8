"""The whole API surface through the official openai SDK, unchanged, against `python -m localcloud`.

Files, the Uploads API past the direct limit, batches (create, retrieve, cancel, list across many pages),
Idempotency-Key; admin routes (tenants, keys, jobs) through httpx, where the SDK has no method. Each test
works in a project (tenant) of its own, made by the admin, so that every count is exact.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from batchline.config import MAX_DIRECT_UPLOAD_BYTES

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
DIRECT_UPLOAD_LIMIT = MAX_DIRECT_UPLOAD_BYTES  # the template's default MaxUploadBytes, which the local cloud deploys
THIRTY_DAYS = 30 * 24 * 3600
# A file whose batches fail validation at once: the cheapest run the state machine can make.
INVALID_BATCH_FILE = b"this line is not JSON\n"
TERMINAL = ("completed", "failed", "cancelled", "expired")


def request_lines(count: int) -> bytes:
    return b"".join(
        b'{"custom_id": "r%d", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"messages": [{"role": "user", "content": "say %d"}]}}\n' % (i, i)
        for i in range(count)
    )


@dataclass
class Project:
    """A tenant made for one test: its id, first key, a job of its own, and an SDK client with that key."""

    id: str
    key: str
    key_id: str
    job_id: str
    client: OpenAI

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def admin(local_cloud: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {local_cloud.admin_key}"}
    with httpx.Client(base_url=local_cloud.base_url, headers=headers, timeout=30) as client:
        yield client


def ok(answer: httpx.Response) -> Any:
    assert answer.is_success, f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
    return answer.json()


def new_project(local_cloud: Any, admin: httpx.Client, name: str, **job: Any) -> Project:
    tenant = ok(admin.post("/admin/tenants", json={"name": name}))
    body = {"tenant": tenant["id"], "model": "mock-model", "provider": {"type": "mock"}, "price_1m_tokens": 0.5}
    job_id = ok(admin.post("/jobs", json=body | job))["id"]
    key = tenant["api_key"]["key"]
    # No retries: a 409 or a 5xx must show, not be retried away.
    client = OpenAI(base_url=local_cloud.base_url, api_key=key, max_retries=0)
    return Project(tenant["id"], key, tenant["api_key"]["id"], job_id, client)


@pytest.fixture
def new_project_for_test(
    request: pytest.FixtureRequest, local_cloud: Any, admin: httpx.Client
) -> Iterator[Callable[..., Project]]:
    """Makes projects named after the test, with the given job fields; closes their clients afterwards."""
    made: list[Project] = []

    def make(**job: Any) -> Project:
        made.append(new_project(local_cloud, admin, request.node.name[:64], **job))
        return made[-1]

    yield make
    for project in made:
        project.client.close()


@pytest.fixture
def project(new_project_for_test: Callable[..., Project]) -> Project:
    return new_project_for_test()


def create_batch(project: Project, file_id: str, **extra: Any) -> Any:
    return project.client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"job_id": project.job_id},
        **extra,
    )


def wait_until_ended(client: OpenAI, batch_id: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while (batch := client.batches.retrieve(batch_id)).status not in TERMINAL:
        assert time.monotonic() < deadline, f"batch still {batch.status} after {timeout} s"
        time.sleep(0.1)
    return batch


# ----------------------------------------------------------------------------------------------- files


def test_files_upload_list_retrieve_read_and_delete_through_the_sdk(project: Project, tmp_path: Path) -> None:
    client = project.client
    path = tmp_path / "first.jsonl"
    path.write_bytes(request_lines(3))
    with path.open("rb") as handle:
        first = client.files.create(file=handle, purpose="batch")
    others = [
        client.files.create(file=("notes.txt", b"not for batches"), purpose="user_data"),
        client.files.create(
            file=("short.jsonl", request_lines(1)),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 3600},
        ),
        client.files.create(file=("last.jsonl", request_lines(2)), purpose="batch"),
    ]
    created = [first, *others]
    newest_first = [f.id for f in reversed(created)]

    assert (first.object, first.filename, first.purpose, first.bytes) == (
        "file",
        "first.jsonl",
        "batch",
        path.stat().st_size,
    )
    assert first.status == "processed"
    assert first.expires_at == first.created_at + THIRTY_DAYS  # the default for `batch`
    assert others[0].expires_at is None  # other purposes keep theirs
    assert others[1].expires_at == others[1].created_at + 3600
    assert [f.id for f in client.files.list()] == newest_first
    assert [f.id for f in client.files.list(order="asc")] == [f.id for f in created]
    assert [f.id for f in client.files.list(purpose="batch")] == [i for i in newest_first if i != others[0].id]
    first_page = client.files.list(limit=2)
    assert (len(first_page.data), first_page.has_more) == (2, True)
    assert [f.id for f in client.files.list(limit=2)] == newest_first  # the SDK follows `after` to the end
    assert [client.files.retrieve(f.id) for f in created] == created
    assert client.files.content(first.id).content == path.read_bytes()

    deleted = client.files.delete(first.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (first.id, "file", True)
    for gone in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError):
            gone(first.id)
    assert first.id not in [f.id for f in client.files.list()]


def test_a_file_over_the_direct_limit_is_refused_with_413_and_goes_in_chunked_byte_identical(
    project: Project, tmp_path: Path
) -> None:
    data = random.Random(6).randbytes(DIRECT_UPLOAD_LIMIT + MiB + 123)  # differ everywhere; uneven last part
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)

    with path.open("rb") as handle, pytest.raises(openai.APIStatusError) as refused:
        project.client.files.create(file=handle, purpose="batch")
    assert refused.value.status_code == 413
    message = refused.value.message
    assert all(way in message for way in ("/v1/uploads", "upload_file_chunked", "presigned_url", "inbox/"))

    upload = project.client.uploads.upload_file_chunked(
        file=path, mime_type="application/jsonl", purpose="batch", part_size=DIRECT_UPLOAD_LIMIT // 2
    )
    assert upload.status == "completed"
    assert upload.file is not None
    assert (upload.file.filename, upload.file.bytes, upload.file.purpose) == ("big.jsonl", len(data), "batch")
    assert project.client.files.retrieve(upload.file.id).bytes == len(data)
    assert project.client.files.content(upload.file.id).content == data


# --------------------------------------------------------------------------------------------- batches


def test_a_batch_is_created_retrieved_and_cancelled_through_the_sdk(
    new_project_for_test: Callable[..., Project],
) -> None:
    # Requests of 2 s each: the batch is still running when it is cancelled.
    project = new_project_for_test(provider={"type": "mock", "latency_ms": 2000})
    client = project.client
    input_file = client.files.create(file=("requests.jsonl", request_lines(3)), purpose="batch")

    batch = client.batches.create(
        input_file_id=input_file.id,
        endpoint="v1/chat/completions",  # the SDK sends it as given; the service stores the canonical form
        completion_window="unlimited",  # type: ignore[arg-type]  # Batchline's addition to OpenAI's "24h"
        metadata={"suite": "e2e"},
        extra_body={"job_id": project.job_id},
    )
    assert (batch.object, batch.status, batch.endpoint) == ("batch", "validating", "/v1/chat/completions")
    assert (batch.input_file_id, batch.completion_window, batch.metadata) == (
        input_file.id,
        "unlimited",
        {"suite": "e2e"},
    )
    assert batch.expires_at is None  # no window, no expiry
    assert batch.model == "mock-model"  # from the job
    assert batch.model_extra is not None
    assert (batch.model_extra["job_id"], batch.model_extra["price_1m_tokens"]) == (project.job_id, 0.5)
    fetched = client.batches.retrieve(batch.id)
    assert (fetched.id, fetched.input_file_id, fetched.created_at) == (batch.id, input_file.id, batch.created_at)
    assert fetched.status in ("validating", "in_progress")
    with pytest.raises(openai.ConflictError):  # the running batch still reads it
        client.files.delete(input_file.id)

    cancelled = client.batches.cancel(batch.id)
    assert (cancelled.id, cancelled.status) == (batch.id, "cancelling")
    assert cancelled.cancelling_at is not None and cancelled.cancelling_at >= batch.created_at
    # Cancelling again is no error (the SDK may retry it).
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_doesnotexist")

    ended = wait_until_ended(client, batch.id)
    assert ended.status == "cancelled"
    assert ended.cancelled_at is not None and ended.cancelled_at >= cancelled.cancelling_at
    # Whenever the cancel landed, each line is in one of the two files once; any unsent one as cancelled.
    answered = [json.loads(line) for f in (ended.output_file_id, ended.error_file_id) if f
                for line in client.files.content(f).text.splitlines()]  # fmt: skip
    assert sorted(line["custom_id"] for line in answered) == ["r0", "r1", "r2"]
    assert {line["error"]["code"] for line in answered if line["response"] is None} <= {"batch_cancelled"}
    assert ended.request_counts is not None
    assert ended.request_counts.completed + ended.request_counts.failed == 3
    assert client.files.delete(input_file.id).deleted  # no batch reads it any more

    # A batch that ended otherwise (here: its file is no JSONL) cannot be cancelled.
    broken = client.files.create(file=("broken.jsonl", INVALID_BATCH_FILE), purpose="batch")
    failed = wait_until_ended(client, create_batch(project, broken.id).id)
    assert failed.status == "failed"
    assert failed.errors is not None and [e.code for e in failed.errors.data or []] == ["invalid_json_line"]
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(failed.id)


def test_the_same_idempotency_key_gives_the_same_batch_and_another_body_under_it_is_a_409(
    project: Project,
) -> None:
    input_file = project.client.files.create(file=("requests.jsonl", INVALID_BATCH_FILE), purpose="batch")
    key = {"Idempotency-Key": f"e2e-{project.id}"}

    first = create_batch(project, input_file.id, metadata={"try": "1"}, extra_headers=key)
    replay = create_batch(project, input_file.id, metadata={"try": "1"}, extra_headers=key)
    with pytest.raises(openai.ConflictError) as reused:
        create_batch(project, input_file.id, metadata={"try": "2"}, extra_headers=key)

    assert replay.id == first.id
    assert replay.created_at == first.created_at
    assert reused.value.body["param"] == "Idempotency-Key"  # type: ignore[index]
    assert [b.id for b in project.client.batches.list()] == [first.id]


def test_batches_list_pages_through_more_than_250_batches_returning_each_once_newest_first(
    project: Project,
) -> None:
    input_file = project.client.files.create(file=("requests.jsonl", INVALID_BATCH_FILE), purpose="batch")
    # One after the other: the local cloud is one process, and threads only make it slower.
    count = 251
    created = {create_batch(project, input_file.id).id for _ in range(count)}
    assert len(created) == count

    listed = list(project.client.batches.list())  # 20 a page: the SDK follows `after` until has_more is false

    ids = [b.id for b in listed]
    assert len(ids) == count
    assert set(ids) == created
    stamps = [b.created_at for b in listed]
    assert stamps == sorted(stamps, reverse=True)
    hundred = project.client.batches.list(limit=100)
    assert (len(hundred.data), hundred.has_more, hundred.data[0].id) == (100, True, ids[0])


# ----------------------------------------------------------------------------------------------- admin


def test_the_admin_manages_tenants_keys_and_jobs_and_a_revoked_key_is_refused(
    local_cloud: Any, admin: httpx.Client, project: Project
) -> None:
    tenants = ok(admin.get("/admin/tenants", params={"limit": 100}))
    assert tenants["object"] == "list"
    assert project.id in [t["id"] for t in tenants["data"]]

    second = ok(admin.post(f"/admin/tenants/{project.id}/api_keys"))
    assert (second["object"], second["tenant_id"]) == ("api_key", project.id)
    keys = ok(admin.get(f"/admin/tenants/{project.id}/api_keys"))["data"]
    assert {k["id"] for k in keys} == {project.key_id, second["id"]}
    assert all(k.get("key") is None for k in keys)  # shown once, at creation
    with OpenAI(base_url=local_cloud.base_url, api_key=second["key"], max_retries=0) as second_client:
        assert list(second_client.files.list()) == []
        revoked = ok(admin.delete(f"/admin/api_keys/{second['id']}"))
        assert revoked == {"id": second["id"], "object": "api_key", "deleted": True}
        with pytest.raises(openai.AuthenticationError):
            second_client.files.list()
    assert list(project.client.files.list()) == []  # the first key still works

    with httpx.Client(base_url=local_cloud.base_url, headers=project.headers) as tenant:
        assert [j["id"] for j in ok(tenant.get("/jobs"))["data"]] == [project.job_id]
        job = ok(tenant.get(f"/jobs/{project.job_id}"))
        assert (job["object"], job["tenant"], job["model"]) == ("job", project.id, "mock-model")
        assert tenant.post("/admin/tenants", json={"name": "not mine to make"}).status_code == 403
        assert tenant.delete(f"/jobs/{project.job_id}").status_code == 403

        assert ok(admin.delete(f"/jobs/{project.job_id}"))["deleted"] is True
        assert tenant.get(f"/jobs/{project.job_id}").status_code == 404
    input_file = project.client.files.create(file=("requests.jsonl", request_lines(1)), purpose="batch")
    with pytest.raises(openai.NotFoundError) as retired:
        create_batch(project, input_file.id)
    assert retired.value.body["param"] == "job_id"  # type: ignore[index]
