"""Inputs that used to pass create or validation and then wedge, crash or miscount a batch (issue 8)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchline import batches, files
from batchline.errors import Conflict
from batchline.finalizing import finalize
from batchline.models import BatchCreate, BatchRecord
from batchline.planning import plan_batch
from batchline.providers import Outcome
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_api_admin_jobs import ADMIN, JOB
from tests.integration.test_api_batches import request_body
from tests.integration.test_api_files import upload
from tests.integration.test_run_steps import EchoProvider, planned, read_lines, request, worker
from tests.integration.test_run_steps import batch as batch  # the fixture

# ------------------------------------------------------------------ 3: an input file outlived by its batch


def test_a_file_that_expires_before_the_window_ends_is_refused_naming_input_file_id(
    api: TestClient, tenant: Tenant
) -> None:
    short = upload(api, tenant, **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"})
    answer = api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, short.json()["id"]))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "input_file_id"


def test_a_file_in_use_has_no_ttl_until_its_last_batch_releases_it(
    api: TestClient, tenant: Tenant, store: Store
) -> None:
    file_id = upload(api, tenant).json()["id"]
    body = request_body(tenant, file_id, completion_window="unlimited")
    first, second = (api.post("/v1/batches", headers=tenant.headers, json=body).json()["id"] for _ in range(2))
    expires_at = store._table.get("file", file_id)["expires_at"]  # type: ignore[index]
    assert "ttl" not in store._table.get("file", file_id)  # type: ignore[operator]  # TTL cannot sweep it now
    store.batches.release_input(store.batches.get_unscoped(first))
    store.files.restore_expiry(file_id)
    assert "ttl" not in store._table.get("file", file_id)  # type: ignore[operator]  # still in use by the second
    store.batches.release_input(store.batches.get_unscoped(second))
    store.files.restore_expiry(file_id)
    assert store._table.get("file", file_id)["ttl"] == expires_at  # type: ignore[index]


def test_an_input_whose_bytes_are_gone_fails_the_batch_instead_of_wedging_it(store: Store, batch: BatchRecord) -> None:
    planned(store, batch)
    store.objects.delete(files.file_key(batch.tenant_id, batch.input_file_id))
    fault = {"Error": "States.TaskFailed", "Cause": "NoSuchKey"}
    assert finalize(store, lambda *_: None, batch.id, fault) == {"status": "failed"}
    ended = store.batches.get_unscoped(batch.id)
    assert ended.request_counts.total == 10 and ended.request_counts.failed == 10
    assert ended.errors is not None
    assert "input_file_missing" in [e.code for e in ended.errors.data]


# ------------------------------------------------------------------------ 4: strings UTF-8 cannot write


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (rb'{"custom_id": "a\ud800", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [1]}}',
         "invalid_custom_id"),
        (rb'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": ["\udfff"]}}',
         "invalid_json_line"),
        (rb'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [1], '
         rb'"\ud83d": 1}}', "invalid_json_line"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_refused_with_its_line(line: bytes, code: str) -> None:
    good = json.dumps(request(0)).encode()
    result = plan_batch(io.BytesIO(good + b"\n" + line + b"\n"), endpoint="/v1/chat/completions", model=None)
    assert not result.ok
    assert [(e.code, e.line) for e in result.errors] == [(code, 2)]


# ------------------------------------------------------------------------------ 5: metadata keys


def test_an_empty_metadata_key_is_refused_naming_metadata(api: TestClient, tenant: Tenant) -> None:
    file_id = upload(api, tenant).json()["id"]
    answer = api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, file_id, metadata={"": "v"}))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"].startswith("metadata")
    assert api.get("/v1/batches", headers=tenant.headers).status_code == 200


# --------------------------------------------------------------------- 6: a url without its leading slash


class UrlProvider(EchoProvider):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    async def send(self, url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        self.urls.append(url)
        return await super().send(url, body, deadline=deadline)


def test_a_url_without_its_slash_is_sent_in_canonical_form(store: Store, tenant: Tenant, runs: RecordedRuns) -> None:
    data = b"".join(json.dumps(request(i) | {"url": "v1/chat/completions"}).encode() + b"\n" for i in range(3))
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create = BatchCreate(
        input_file_id=record.id, endpoint="/v1/chat/completions", completion_window="24h", job_id=tenant.job.id
    )
    batch = batches.create_batch(store, runs, tenant.id, create)
    chunk = planned(store, batch)[0]
    provider = UrlProvider()
    worker(store, provider).run(batch.id, chunk, 0)
    assert provider.urls == ["/v1/chat/completions"] * 3


# ------------------------------------------------------------------------------ 7: concurrent cancels


def test_a_cancel_that_loses_the_race_to_another_cancel_answers_the_batch(
    store: Store, tenant: Tenant, batch: BatchRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned(store, batch)
    stale = store.batches.get(tenant.id, batch.id)  # in_progress, as a concurrent cancel read it
    first = batches.cancel_batch(store, tenant.id, batch.id)
    monkeypatch.setattr(store.batches, "get", lambda *_a, **_k: stale)
    second = batches.cancel_batch(store, tenant.id, batch.id)
    assert second.status == first.status == "cancelling"
    assert second.cancelling_at == first.cancelling_at


def test_a_cancel_that_loses_the_race_to_finalize_is_still_409(
    store: Store, tenant: Tenant, batch: BatchRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned(store, batch)
    stale = store.batches.get(tenant.id, batch.id)
    finalize(store, lambda *_: None, batch.id, None)
    monkeypatch.setattr(store.batches, "get", lambda *_a, **_k: stale)
    with pytest.raises(Conflict):
        batches.cancel_batch(store, tenant.id, batch.id)


# ------------------------------------------------------------------- 8: cancelled before planning


def test_a_batch_cancelled_before_planning_counts_every_line_once(
    store: Store, tenant: Tenant, batch: BatchRecord
) -> None:
    batches.cancel_batch(store, tenant.id, batch.id)
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "cancelled"}
    finalize(store, lambda *_: None, batch.id, None)  # a retry counts nothing again
    ended = store.batches.get_unscoped(batch.id)
    assert ended.request_counts.model_dump() == {"total": 10, "completed": 0, "failed": 10}
    assert len(read_lines(store, ended, ended.error_file_id)) == 10


# --------------------------------------------------------------------------- 9: types and bounds


def test_a_number_in_a_string_is_not_a_number(api: TestClient, tenant: Tenant) -> None:
    file_id = upload(api, tenant).json()["id"]
    expiry = {"anchor": "created_at", "seconds": "3600"}
    body = request_body(tenant, file_id, output_expires_after=expiry)
    answer = api.post("/v1/batches", headers=tenant.headers, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"].startswith("output_expires_after")


def test_error_messages_echo_a_bounded_part_of_a_client_id(api: TestClient, tenant: Tenant) -> None:
    long_id = "batch_" + "x" * 60_000
    answers = [
        api.get(f"/v1/batches/{long_id}", headers=tenant.headers),
        api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, "file-" + "y" * 60_000)),
        api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, "f", metadata={"k" * 60_000: "v"})),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text[:200]
        error = answer.json()["error"]
        assert len(error["message"]) < 1024, error["message"][:200]
        assert error["param"] is None or len(error["param"]) < 256


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "m" * 100_000),
        ("use_case", "u" * 100_000),
        ("tenant", "t" * 10_000),
        ("provider", {"type": "openai", "base_url": "http://h/" + "p" * 10_000}),
        ("provider", {"type": "openai", "base_url": "http://h/v1", "api_key_secret": "s" * 10_000}),
        ("provider", {"type": "bedrock", "region": "r" * 1000, "model_id": "m"}),
        ("provider", {"type": "bedrock", "region": "us-east-1", "model_id": "m" * 10_000}),
    ],
)
def test_job_strings_are_bounded(api: TestClient, tenant: Tenant, field: str, value: Any) -> None:
    job = {**JOB, "tenant": tenant.id, field: value}
    answer = api.post("/v1/jobs", headers=ADMIN, json=job)
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["error"]["param"].startswith(field)


def test_a_batch_whose_planning_failed_after_its_manifest_counts_every_line(store: Store, batch: BatchRecord) -> None:
    planned(store, batch)
    # As if plan had written the manifest and then failed every retry before its status change.
    store._table.update(
        "batch", batch.id, set_={"status": "validating", "in_progress_at": None, "request_counts.total": 0}
    )
    fault = {"Error": "States.TaskFailed", "Cause": "boom"}
    assert finalize(store, lambda *_: None, batch.id, fault) == {"status": "failed"}
    assert store.batches.get_unscoped(batch.id).request_counts.model_dump() == {
        "total": 10,
        "completed": 0,
        "failed": 10,
    }
