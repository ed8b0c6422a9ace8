"""errors.data is bounded by bytes as well as by count: the batch item and its event stay under AWS's limits.

The worst input: every line has every problem it can have, each echoing a long non-ASCII value. Emoji
cost 4 bytes in UTF-8 (12 when JSON escapes them as surrogate pairs); control characters cost 6 once a
message has quoted them, 7 when that message is itself JSON-encoded.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from batchline import batches, files
from batchline.config import FinalizeSettings
from batchline.finalizing import encode_detail, event_detail, finalize
from batchline.models import MAX_ERROR_MESSAGE_CHARS, BatchCreate, BatchError, BatchErrors, BatchRecord
from batchline.planning import plan
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant, load_function

DYNAMODB_ITEM_LIMIT = 400 * 1024
EVENTBRIDGE_ENTRY_LIMIT = 256 * 1024
URL = "/v1/chat/completions"


def worst_line(i: int) -> bytes:
    """custom_id, method, url, body and model all wrong, the echoed values as long as messages show."""
    echo = "😀" * 100 if i % 2 else "\u0001" * 100
    if i == 4:
        echo = "\ud800" * 100  # lone surrogates: JSON may carry them, UTF-8 cannot
    line = {"custom_id": "", "method": echo, "url": echo, "body": {"model": echo, "messages": []}}
    return json.dumps(line, ensure_ascii=i == 4).encode() + b"\n"


def item_size(value: Any) -> int:
    """DynamoDB's size of a value: UTF-8 strings, numbers by digits, 3 bytes + 1 per element for M and L."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return len(str(value).lstrip("-").replace(".", "")) // 2 + 2
    if isinstance(value, dict):
        return 3 + sum(len(k.encode()) + item_size(v) + 1 for k, v in value.items())
    if isinstance(value, list):
        return 3 + sum(item_size(v) + 1 for v in value)
    raise TypeError(type(value))


class Events:
    """An EventBridge client that keeps the entries it is given."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # boto3's name
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


def entry_size(entry: dict[str, Any]) -> int:
    """PutEvents' size of an entry: the UTF-8 bytes of its strings (counting every field, to be safe)."""
    return 14 + sum(len(value.encode()) for value in entry.values() if isinstance(value, str))


def test_the_worst_errors_fit_the_batch_item_and_the_event_and_still_fail_the_batch(
    store: Store, tenant: Tenant, runs: RecordedRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"".join(worst_line(i) for i in range(1000))
    record = files.new_record(tenant.id, filename="bad.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create = BatchCreate(
        input_file_id=record.id,
        endpoint=URL,
        completion_window="24h",
        job_id=tenant.job.id,
        metadata={f"k{i:02d}{'é' * 60}": "😀" * 512 for i in range(16)},  # the largest metadata allowed
    )
    batch = batches.create_batch(store, runs, tenant.id, create)
    assert plan(store, batch.id, lines_per_chunk=100, requests_per_worker=25)["status"] == "failed"

    app = load_function("finalize")
    events = Events()
    monkeypatch.setattr(app, "get_events", lambda: events)
    monkeypatch.setattr(app, "get_settings", lambda: FinalizeSettings(table_name="t", bucket_name="b"))
    assert finalize(store, app.publish, batch.id, None) == {"status": "failed"}

    item = store._table.get("batch", batch.id)
    assert item is not None
    assert item_size(item) < DYNAMODB_ITEM_LIMIT
    [entry] = events.entries
    assert entry_size(entry) < EVENTBRIDGE_ENTRY_LIMIT
    ended = store.batches.get_unscoped(batch.id)
    assert ended.errors is not None
    reported = ended.errors.data
    assert 100 <= len(reported) <= 1000
    assert [e.line for e in reported] == sorted(e.line for e in reported)  # a prefix, in line order
    assert reported[0].line == 1
    assert {e.code for e in reported} >= {"invalid_custom_id", "invalid_method", "url_mismatch", "model_mismatch"}
    detail = json.loads(entry["Detail"])
    assert detail["status"] == "failed"
    assert detail["id"] == batch.id
    assert detail["errors"]["data"]  # the event still says why


def test_a_long_message_is_cut_to_its_bound() -> None:
    assert len(BatchError(code="x", message="é" * 10_000).message) == MAX_ERROR_MESSAGE_CHARS


def test_an_event_detail_over_its_budget_keeps_the_errors_that_fit() -> None:
    errors = BatchErrors(data=[BatchError(code="invalid_body", line=i, message="é" * 400) for i in range(1, 201)])
    record = BatchRecord(
        id="batch_1",
        endpoint=URL,
        input_file_id="file-1",
        completion_window="24h",
        status="failed",
        created_at=0,
        job_id="job-1",
        model="m",
        price_1m_tokens=0,
        tenant_id="t",
        errors=errors,
    )
    full = event_detail(record)
    assert len(full["errors"]["data"]) == 200
    cut = event_detail(record, budget=20_000)
    assert 0 < len(cut["errors"]["data"]) < 200
    assert len(encode_detail(cut).encode()) <= 20_000
    assert cut["errors"]["data"] == full["errors"]["data"][: len(cut["errors"]["data"])]
