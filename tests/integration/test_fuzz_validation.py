"""A fuzzer for batch files: whatever the bytes, plan, worker and finalize never crash, and nothing is lost.

Each example is a file of lines drawn from: arbitrary bytes, arbitrary JSON values, and requests that are
nearly right (custom ids of any unicode, lone surrogates included, other methods and urls, odd bodies). The run
goes through the real plan, worker and finalize on moto. Either validation refuses the file, with only the
contract's codes and a line number inside the file (or null), or every accepted line ends in exactly one of the
output and error files.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from batchline import files
from batchline.finalizing import finalize
from batchline.models import Chunk
from batchline.planning import plan
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.integration.conftest import Tenant, batch_of
from tests.integration.test_run_steps import EchoProvider

URL = "/v1/chat/completions"
CODES = {
    "empty_file",
    "file_too_large",
    "too_many_tasks",
    "too_many_embedding_inputs",
    "invalid_json_line",
    "missing_required_parameter",
    "invalid_custom_id",
    "duplicate_custom_id",
    "invalid_method",
    "url_mismatch",
    "model_mismatch",
    "invalid_body",
    "request_limit_exceeded",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Any code point, with the troublesome ones often: lone surrogates, NUL, line separators, astral.
awkward = st.sampled_from(["\ud800", "\udfff", "\x00", "\u2028", "\x85", "é", "\U0001f600"])
# Joined by hand: st.text() keeps to what UTF-8 can encode, and lone surrogates are the point.
texts = st.lists(st.one_of(st.characters(exclude_categories=()), awkward), max_size=8).map("".join)


@st.composite
def near_requests(draw: Any) -> bytes:
    request: dict[str, Any] = {
        "custom_id": draw(st.one_of(texts, json_values)),
        "method": draw(st.sampled_from(["POST", "GET", "post"])),
        "url": draw(st.sampled_from([URL, URL.lstrip("/"), "/v1/embeddings", "/v1/chat/completions/"])),
        "body": draw(
            st.one_of(
                st.fixed_dictionaries({"messages": st.just([{"role": "user", "content": "hi"}])}),
                st.fixed_dictionaries({"messages": st.lists(st.dictionaries(texts, texts, max_size=2), max_size=2)}),
                st.fixed_dictionaries({"messages": st.just([]), "model": texts}),
                json_values,
            )
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(request)), max_size=1)):
        del request[key]
    # json.dumps escapes lone surrogates as \\ud800: valid JSON text whose string cannot be UTF-8.
    return json.dumps(request).encode()


@st.composite
def valid_requests(draw: Any) -> bytes:
    # Valid but for what the custom id and content may hold (any code point, lone surrogates included).
    content = draw(texts)
    request = {"custom_id": draw(texts), "method": "POST", "url": URL,
               "body": {"messages": [{"role": "user", "content": content}]}}  # fmt: skip
    return json.dumps(request).encode()


@st.composite
def files_of_lines(draw: Any) -> list[bytes]:
    """Mostly valid files (so runs happen), each with a few lines of anything else now and then."""
    drawn = draw(st.lists(valid_requests(), min_size=1, max_size=6))
    # Unique custom ids, or the file is only ever a duplicate_custom_id.
    unique = []
    for i, raw in enumerate(drawn):
        request = json.loads(raw)
        request["custom_id"] = f"{request['custom_id']}#{i}"
        unique.append(json.dumps(request).encode())
    odd = st.one_of(
        near_requests(),
        st.binary(max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b),
        json_values.map(lambda v: json.dumps(v).encode()),
    )
    for extra in draw(st.lists(odd, max_size=2)):
        unique.insert(draw(st.integers(0, len(unique))), extra)
    return unique


lines = files_of_lines()
endings = st.sampled_from([b"\n", b"\r\n"])


def run_batch(store: Store, tenant: Tenant, data: bytes) -> tuple[Any, list[dict[str, Any]]]:
    batch = batch_of(store, tenant, data, job_id=tenant.job.id)
    planned = plan(store, batch.id, lines_per_chunk=3, requests_per_worker=4)
    if planned["status"] == "in_progress":
        manifest = [Chunk(**c) for c in json.loads(b"".join(store.objects.stream(planned["manifest_key"])))]
        for chunk in manifest:
            progress: dict[str, Any] = {"cursor": 0, "offset": None, "done": False}
            while not progress["done"]:
                run = ChunkRun(store, lambda job: EchoProvider(), requests_in_flight=4, remaining_seconds=lambda: 900.0,
                               reserve_seconds=10.0, status_check_interval=0.0)  # fmt: skip
                at = {"job_id": planned["job_id"], "offset": progress["offset"]}
                progress = run.run(batch.id, chunk, progress["cursor"], **at)
    finalize(store, lambda detail_type, detail: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    answered = []
    for file_id in (ended.output_file_id, ended.error_file_id):
        if file_id is not None:
            raw = b"".join(store.objects.stream(files.file_key(tenant.id, file_id)))
            answered.extend(json.loads(x) for x in raw.splitlines())
    return ended, answered


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines, ending=endings)
def test_any_file_is_refused_by_contract_or_answered_line_for_line(
    store: Store, tenant: Tenant, lines: list[bytes], ending: bytes
) -> None:
    data = ending.join(lines) + ending
    ended, answered = run_batch(store, tenant, data)
    event(ended.status)
    if ended.status == "failed":
        problems = ended.errors.data if ended.errors else []
        assert problems, "a failed batch says why"
        assert {p.code for p in problems} <= CODES
        assert all(p.line is None or 1 <= p.line <= len(lines) for p in problems)
        assert answered == []
        return
    assert ended.status == "completed"
    sent = [json.loads(line)["custom_id"] for line in lines if line.strip()]
    assert sorted(a["custom_id"] for a in answered) == sorted(sent)
    assert ended.request_counts.total == len(sent)
    assert ended.request_counts.completed + ended.request_counts.failed == len(sent)
