"""Result lines are always UTF-8, whatever an upstream answered."""

from __future__ import annotations

import json
import tracemalloc

from batchline.providers import Outcome
from batchline.result_lines import FAILED, result_line, unsent_line


def test_an_upstream_answer_holding_a_lone_surrogate_still_makes_a_utf8_line() -> None:
    # An OpenAI-compatible server may answer JSON with an escaped lone surrogate: its decoded text
    # cannot be encoded as UTF-8; the line keeps it escaped instead of failing the worker.
    line = result_line("a", Outcome.answer(200, {"text": "x\ud800y", "usage": {}}))
    assert json.loads(line.decode("utf-8"))["response"]["body"]["text"] == "x\ud800y"


def test_non_ascii_text_stays_as_it_is() -> None:
    line = unsent_line("é", FAILED, "batch_req_1")
    assert "é".encode() in line


def test_a_non_finite_number_an_upstream_answered_is_null_so_the_line_stays_json() -> None:
    # Python's json reads NaN and 1e400 (inf) in an upstream's body, and would write them back as
    # NaN and Infinity, which no strict JSON reader of the output file accepts.
    line = result_line("a", Outcome.answer(200, {"scores": [float("nan"), float("inf"), 0.5]}))

    def refuse(name: str) -> None:
        raise ValueError(name)

    assert json.loads(line, parse_constant=refuse)["response"]["body"]["scores"] == [None, None, 0.5]


def test_lines_are_compact_utf8_json_with_one_newline() -> None:
    line = result_line("é", Outcome.answer(200, {"text": "😀\n", "n": 1}, "req_1"))
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert line.startswith(b'{"id":"batch_req_')
    assert (
        line.split(b",", 1)[1]
        == (
            '"custom_id":"é","response":{"status_code":200,"request_id":"req_1","body":{"text":"😀\\n","n":1}},'
            '"error":null}\n'
        ).encode()
    )


def test_batch_request_ids_are_unique_and_in_openai_form() -> None:
    ids = [json.loads(result_line(str(i), Outcome.answer(200, {})))["id"] for i in range(1000)]
    assert len(set(ids)) == 1000
    assert all(i.startswith("batch_req_") and len(i) == len("batch_req_") + 24 for i in ids)


def test_a_line_takes_the_memory_of_its_bytes_not_of_the_encoders_buffer() -> None:
    # The worker bounds what an invocation holds by the lines' lengths; orjson hands back its whole
    # output buffer (4 KiB for a line of a few hundred bytes), so that bound was ~9x low in memory.
    answer = Outcome.answer(200, {"choices": [{"message": {"content": "A tip about batch jobs."}}], "n": 1}, "req_1")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines = [result_line(f"request-{i}", answer) for i in range(1000)]
        lines += [unsent_line(f"request-{i}", FAILED, "batch_req_1") for i in range(1000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    payload = sum(len(line) for line in lines)
    # Each bytes object has a ~33-byte header, and the list its pointers.
    assert held < payload + 64 * len(lines), (held, payload)
