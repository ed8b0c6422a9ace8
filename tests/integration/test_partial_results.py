"""GET /v1/batches/{id}/partial_results on moto: committed lines once each, in input order, then finalize's files."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from batchline import batches, layout, partials
from batchline.finalizing import finalize
from batchline.models import BatchRecord, Chunk, SegmentRecord
from batchline.planning import plan
from batchline.store import Store
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_run_steps import line_ends, new_batch, planned

CURSOR, HAS_MORE = "x-batchline-cursor", "x-batchline-has-more"


# ------------------------------------------------------------------------------------------ helpers
def answer_line(batch: BatchRecord, index: int, kind: str, pad: int = 0) -> bytes:
    """Line `index` of the input answered: `o` a 200 (output), `e` a 500 (error)."""
    status = 200 if kind == "o" else 500
    body: dict[str, Any] = {"echo": index, "pad": "x" * pad}
    line = {"id": f"batch_req_{batch.id}_{index}", "custom_id": f"r{index}",
            "response": {"status_code": status, "request_id": f"req_{index}", "body": body}, "error": None}  # fmt: skip
    return json.dumps(line).encode() + b"\n"


def put_segment(
    store: Store,
    batch: BatchRecord,
    chunk: Chunk,
    cursor: int,
    kinds: str,
    *,
    commit: bool = True,
    pad: int = 0,
    with_runs: bool = True,
) -> SegmentRecord:
    """A worker's segment over chunk lines [cursor, cursor + len(kinds)), its parts, kept and (maybe) committed."""
    out_key, err_key = layout.part_keys(batch.id, chunk.chunk, cursor, "a")
    lines = [(k, answer_line(batch, chunk.first_line + cursor + i, k, pad)) for i, k in enumerate(kinds)]
    out = b"".join(line for k, line in lines if k == "o")
    err = b"".join(line for k, line in lines if k == "e")
    for key, data in ((out_key, out), (err_key, err)):
        if data:
            store.objects.put_bytes(key, data)
    runs: list[int] = []
    for i, k in enumerate(kinds):
        if i == 0 and k == "e":
            runs.append(0)
        if i and kinds[i - 1] == k:
            runs[-1] += 1
        else:
            runs.append(1)
    end = cursor + len(kinds)
    segment = SegmentRecord(
        batch_id=batch.id,
        chunk=chunk.chunk,
        cursor=cursor,
        next_cursor=end,
        next_offset=line_ends(store, batch)[chunk.first_line + end - 1],
        done=end == chunk.line_count,
        out_key=out_key if out else None,
        err_key=err_key if err else None,
        completed=kinds.count("o"),
        failed=kinds.count("e"),
        runs=runs if with_runs else None,
    )
    assert store.segments.put(segment) is None
    if commit:
        assert store.segments.commit(segment) == "recorded"
    return segment


def get(api: TestClient, tenant: Tenant, batch_id: str, after: str | None = None) -> httpx.Response:
    params = {"after": after} if after is not None else {}
    answer = api.get(f"/v1/batches/{batch_id}/partial_results", headers=tenant.headers, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/jsonl")
    return answer


def drain(api: TestClient, tenant: Tenant, batch_id: str, after: str | None = None) -> tuple[list[bytes], str, bool]:
    """Every line the route has now, call after call: the lines, the last cursor, its has-more."""
    found: list[bytes] = []
    while True:
        answer = get(api, tenant, batch_id, after)
        after, more = answer.headers[CURSOR], answer.headers[HAS_MORE]
        found += answer.content.splitlines(keepends=True)
        if not answer.content or more == "false":
            return found, after, more == "true"


def core_drain(store: Store, tenant: Tenant, batch_id: str, after: str | None, page_bytes: int) -> tuple[list, str]:
    """As `drain`, through the core with a small page."""
    found: list[bytes] = []
    while True:
        page = partials.read(store, tenant.id, batch_id, after, page_bytes=page_bytes)
        # Below its bound before its last line (a line alone may pass it)
        assert len(page.lines) <= 1 or sum(map(len, page.lines[:-1])) < page_bytes
        found += page.lines
        after = page.cursor
        if not page.lines or not page.has_more:
            return found, after


def is_output(line: bytes) -> bool:
    response = json.loads(line)["response"]
    return response is not None and 200 <= response["status_code"] < 300


def result_file(store: Store, batch: BatchRecord, file_id: str | None) -> list[bytes]:
    if file_id is None:
        return []
    return b"".join(store.objects.stream(layout.file_key(batch.tenant_id, file_id))).splitlines(keepends=True)


def final_files(store: Store, batch: BatchRecord) -> tuple[list[bytes], list[bytes]]:
    ended = store.batches.get_unscoped(batch.id)
    return result_file(store, ended, ended.output_file_id), result_file(store, ended, ended.error_file_id)


def split(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    return [x for x in lines if is_output(x)], [x for x in lines if not is_output(x)]


def chunk_of(chunks: list[Chunk], line: bytes) -> int:
    index = int(json.loads(line)["custom_id"][1:])
    return next(c.chunk for c in chunks if c.first_line <= index < c.first_line + c.line_count)


@pytest.fixture
def three_chunks(store: Store, tenant: Tenant, runs: RecordedRuns) -> tuple[BatchRecord, list[Chunk]]:
    """A running batch of 12 lines in chunks of 4."""
    batch = new_batch(store, tenant, runs, lines=12)
    return batch, planned(store, batch, lines_per_chunk=4)


# ------------------------------------------------------------------------------------------ tests
def test_chunks_progressing_out_of_order_give_each_committed_line_once_in_input_order_within_its_chunk(
    api: TestClient, store: Store, tenant: Tenant, three_chunks: tuple[BatchRecord, list[Chunk]]
) -> None:
    batch, chunks = three_chunks
    # Given nothing committed yet
    lines, cursor, more = drain(api, tenant, batch.id)
    assert lines == [] and more
    # When the last chunk commits before the first, and the first's later segment before the middle's
    steps = [(2, 0, "oe"), (0, 0, "eoo"), (2, 2, "oo"), (1, 0, "o"), (0, 3, "o"), (1, 1, "eeo")]
    seen: list[bytes] = []
    for chunk, at, kinds in steps:
        segment = put_segment(store, batch, chunks[chunk], at, kinds)
        new, cursor, more = drain(api, tenant, batch.id, cursor)
        # Then each call answers exactly the lines just committed, in their input order
        expected = [answer_line(batch, chunks[chunk].first_line + i, k) for i, k in enumerate(kinds, segment.cursor)]
        assert new == expected
        assert more
        seen += new
    assert len(seen) == len(set(seen)) == 12
    # And every chunk's lines came in input order
    for chunk in chunks:
        mine = [int(json.loads(x)["custom_id"][1:]) for x in seen if chunk_of(chunks, x) == chunk.chunk]
        assert mine == sorted(mine)


def test_a_segment_bigger_than_a_page_is_read_across_pages_from_a_cursor_inside_it(
    api: TestClient, store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs, lines=6)
    chunk = planned(store, batch, lines_per_chunk=6)[0]
    # Given one segment of 6 lines of 900 KiB each: 5.3 MiB, over two pages of 2 MiB
    put_segment(store, batch, chunk, 0, "ooeooe", pad=900 * 1024)
    answers, cursor = [], None
    while True:
        answer = get(api, tenant, batch.id, cursor)
        if not answer.content:
            break
        answers.append(answer.content.splitlines(keepends=True))
        cursor = answer.headers[CURSOR]
    # Then each page stays within its bound, the cursor resumes inside the segment, and nothing is lost
    assert [len(page) for page in answers] == [2, 2, 2]
    assert all(sum(map(len, page)) <= partials.PAGE_BYTES for page in answers)
    assert [x for page in answers for x in page] == [
        answer_line(batch, i, k, 900 * 1024) for i, k in enumerate("ooeooe")
    ]


def test_pending_segments_count_only_once_committed_while_the_batch_runs(
    api: TestClient, store: Store, tenant: Tenant, three_chunks: tuple[BatchRecord, list[Chunk]]
) -> None:
    batch, chunks = three_chunks
    # Given a kept but uncommitted segment at the chunk's start, and a committed one after it
    first = put_segment(store, batch, chunks[0], 0, "oo", commit=False)
    put_segment(store, batch, chunks[0], 2, "eo")
    # Then neither is answered: the chain from the chunk's start stops at the pending one
    lines, cursor, _ = drain(api, tenant, batch.id)
    assert lines == []
    # When it commits, both come, in order
    assert store.segments.commit(first) == "recorded"
    lines, _, _ = drain(api, tenant, batch.id, cursor)
    assert lines == [answer_line(batch, i, k) for i, k in enumerate("ooeo")]


# Each chunk read to its end before the next one's lines are committed, or the last chunk first.
IN_CHUNK_ORDER = [(0, 0, "oe"), (0, 2, "eo"), (1, 0, "o"), (1, 1, "e")]
OUT_OF_ORDER = [(2, 0, "oeo"), (1, 0, "o"), (0, 0, "oe"), (1, 1, "e"), (0, 2, "eo")]


@pytest.mark.parametrize(
    ("steps", "answered_errors"), [(IN_CHUNK_ORDER, 3), (OUT_OF_ORDER, 4)], ids=["in chunk order", "out of order"]
)
def test_read_while_running_and_after_a_cancel_to_the_end_equals_finalizes_files(
    api: TestClient,
    store: Store,
    tenant: Tenant,
    three_chunks: tuple[BatchRecord, list[Chunk]],
    steps: list[tuple[int, int, str]],
    answered_errors: int,
) -> None:
    batch, chunks = three_chunks
    in_chunk_order = steps == IN_CHUNK_ORDER
    seen: list[bytes] = []
    lines, cursor, _ = drain(api, tenant, batch.id)
    for chunk, at, kinds in steps:
        put_segment(store, batch, chunks[chunk], at, kinds)
        lines, cursor, more = drain(api, tenant, batch.id, cursor)
        seen += lines
    # Given a segment kept but not committed when the cancel comes (finalize merges it), and unsent tails
    put_segment(store, batch, chunks[1], 2, "o", commit=False)
    batches.cancel_batch(store, tenant.id, batch.id)
    lines, cursor, more = drain(api, tenant, batch.id, cursor)
    seen += lines
    assert lines == [] and more  # cancelling, not ended: nothing new counts yet
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "cancelled"}
    # When the rest is read after the end, some pages through the core with a page of a few lines
    rest, cursor = core_drain(store, tenant, batch.id, cursor, page_bytes=700)
    last = get(api, tenant, batch.id, cursor)
    assert last.content == b"" and last.headers[HAS_MORE] == "false"
    seen += rest
    # Then, split into output and error lines, they are finalize's files
    output, errors = final_files(store, batch)
    unsent = 12 - sum(len(kinds) for _, _, kinds in steps) - 1  # the pending segment's line was answered
    assert len(errors) == answered_errors + unsent
    assert {json.loads(x)["error"]["code"] for x in errors if json.loads(x)["error"]} == {"batch_cancelled"}
    if in_chunk_order:
        assert split(seen) == (output, errors)
    else:
        # Out of order, the lines of a later chunk came first: the same lines once each, each chunk in order
        assert Counter(seen) == Counter(output + errors)
        for chunk in chunks:
            mine = [x for x in seen if chunk_of(chunks, x) == chunk.chunk]
            final = [x for x in output + errors if chunk_of(chunks, x) == chunk.chunk]
            assert split(mine) == split(final)


def test_a_batch_read_only_after_it_ended_in_small_pages_equals_finalizes_files(
    api: TestClient, store: Store, tenant: Tenant, three_chunks: tuple[BatchRecord, list[Chunk]]
) -> None:
    batch, chunks = three_chunks
    put_segment(store, batch, chunks[0], 0, "oeoo")
    put_segment(store, batch, chunks[1], 0, "eeo", with_runs=False)  # an older record: no runs
    put_segment(store, batch, chunks[2], 0, "o")
    batches.cancel_batch(store, tenant.id, batch.id)
    finalize(store, lambda *_: None, batch.id, None)
    for page_bytes in (1, 300, 10_000):
        lines, _ = core_drain(store, tenant, batch.id, None, page_bytes)
        assert split(lines) == final_files(store, batch)


def test_a_batch_cancelled_before_planning_answers_every_input_line_as_finalize_did(
    api: TestClient, store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    # Given a batch cancelled in validation: no manifest, every line unsent
    batch = new_batch(store, tenant, runs, lines=7)
    lines, cursor, more = drain(api, tenant, batch.id)
    assert lines == [] and more
    batches.cancel_batch(store, tenant.id, batch.id)
    assert finalize(store, lambda *_: None, batch.id, None) == {"status": "cancelled"}
    # When read to the end, a few lines a page
    lines, cursor = core_drain(store, tenant, batch.id, cursor, page_bytes=400)
    # Then it is the error file, and nothing more can come
    assert split(lines) == final_files(store, batch) and len(lines) == 7
    assert get(api, tenant, batch.id, cursor).headers[HAS_MORE] == "false"


def test_a_batch_whose_file_was_invalid_has_no_lines_and_no_more(
    api: TestClient, store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs, lines=3)
    store.objects.put_bytes(layout.file_key(tenant.id, batch.input_file_id), b"not json\n")
    assert plan(store, batch.id, lines_per_chunk=4, requests_per_worker=1_000)["status"] == "failed"
    finalize(store, lambda *_: None, batch.id, None)
    answer = get(api, tenant, batch.id)
    assert answer.content == b"" and answer.headers[HAS_MORE] == "false"


def test_another_tenants_batch_is_not_found(
    api: TestClient, store: Store, other_tenant: Tenant, three_chunks: tuple[BatchRecord, list[Chunk]]
) -> None:
    batch, chunks = three_chunks
    put_segment(store, batch, chunks[0], 0, "o")
    answer = api.get(f"/v1/batches/{batch.id}/partial_results", headers=other_tenant.headers)
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found_error"


def test_a_malformed_foreign_or_impossible_cursor_is_422_naming_after(
    api: TestClient, store: Store, tenant: Tenant, runs: RecordedRuns, three_chunks: tuple[BatchRecord, list[Chunk]]
) -> None:
    batch, chunks = three_chunks
    put_segment(store, batch, chunks[0], 0, "oo")
    other = new_batch(store, tenant, runs, lines=2)
    cursors = [
        "garbage!",
        "AAAA",
        partials.encode(other.id, partials.Cursor(0, {0: 1})),  # another batch's
        partials.encode(batch.id, partials.Cursor(0, {0: 3})),  # past the committed lines
        partials.encode(batch.id, partials.Cursor(1)),  # a chunk read to an end it has not reached
        partials.encode(batch.id, partials.Cursor(0, {5: 1})),  # a chunk the batch does not have
    ]
    for after in cursors:
        answer = api.get(f"/v1/batches/{batch.id}/partial_results", headers=tenant.headers, params={"after": after})
        assert answer.status_code == 422, (after, answer.text)
        assert answer.json()["error"]["param"] == "after"
        assert answer.json()["error"]["type"] == "invalid_request_error"


def test_the_openai_sdk_reads_partial_results_with_its_own_client(
    api: TestClient, store: Store, tenant: Tenant, three_chunks: tuple[BatchRecord, list[Chunk]]
) -> None:
    batch, chunks = three_chunks
    put_segment(store, batch, chunks[1], 0, "oe")
    client = openai.OpenAI(base_url="http://testserver/v1", api_key=tenant.key, http_client=api, max_retries=0)
    first = client.get(f"/batches/{batch.id}/partial_results", cast_to=httpx.Response)
    assert first.content.splitlines(keepends=True) == [answer_line(batch, 4, "o"), answer_line(batch, 5, "e")]
    put_segment(store, batch, chunks[0], 0, "o")
    cursor = first.headers[CURSOR]
    second = client.get(
        f"/batches/{batch.id}/partial_results", cast_to=httpx.Response, options={"params": {"after": cursor}}
    )
    assert second.content == answer_line(batch, 0, "o")
    assert second.headers[HAS_MORE] == "true"
    with pytest.raises(openai.UnprocessableEntityError):
        client.get(f"/batches/{batch.id}/partial_results", cast_to=httpx.Response, options={"params": {"after": "x"}})


def test_the_document_names_the_cursor_and_has_more_headers(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/batches/{batch_id}/partial_results"]["get"]
    answer = operation["responses"]["200"]
    assert set(answer["headers"]) == {CURSOR, HAS_MORE}
    assert "application/jsonl" in answer["content"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["after"]
