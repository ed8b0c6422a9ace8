"""The streaming validator and chunk planner of the Plan state."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from batchline.jsonl import iter_request_lines, parse_request_line
from batchline.models import Chunk
from batchline.planning import Plan, plan_batch
from batchline.rules import DUPLICATE_CUSTOM_ID_MESSAGE

CORPUS = Path(__file__).parent / "corpus"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MODEL = "gpt-4o-mini"
BOM = b"\xef\xbb\xbf"


def request(custom_id: Any = "r-1", *, url: Any = CHAT, **changes: Any) -> dict[str, Any]:
    """A valid chat request line as a dict; arguments replace fields, or drop them when given `...`."""
    line: dict[str, Any] = {
        "method": "POST",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
    }
    for key, value in {"custom_id": custom_id, "url": url, **changes}.items():
        if value is ...:
            line.pop(key, None)
        else:
            line[key] = value
    return line


def encode(line: dict[str, Any] | str) -> bytes:
    """One line's bytes, without a terminator."""
    text = line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
    return text.encode()


def jsonl(*lines: dict[str, Any] | str | bytes, end: bytes = b"\n") -> bytes:
    """A file of the given lines, each followed by `end`."""
    return b"".join((line if isinstance(line, bytes) else encode(line)) + end for line in lines)


def plan(data: bytes, **options: Any) -> Plan:
    """plan_batch over bytes, for the chat endpoint and the job's model unless told otherwise."""
    options.setdefault("endpoint", CHAT)
    options.setdefault("model", MODEL)
    return plan_batch(io.BytesIO(data), **options)


def found(result: Plan) -> list[tuple[str, int | None, str | None]]:
    """The errors as (code, line, param)."""
    return [(error.code, error.line, error.param) for error in result.errors]


class StrictStream:
    """A stream that checks the planner's reads: never more than read_size asked, optionally short reads."""

    def __init__(self, data: bytes, read_size: int, *, short: bool = False) -> None:
        self.data = data
        self.position = 0
        self.read_size = read_size
        self.short = short
        self.reads = 0

    def read(self, size: int, /) -> bytes:
        assert 0 < size <= self.read_size, f"asked for {size} bytes with read_size {self.read_size}"
        if self.short:
            # Like a socket: any non-empty answer up to what was asked, never a false EOF.
            size = max(1, size // 2) if self.reads % 2 else size
        self.reads += 1
        block = self.data[self.position : self.position + size]
        self.position += len(block)
        assert len(block) <= self.read_size
        return block


class NoReadStream:
    """A stream that must not be read."""

    def read(self, size: int, /) -> bytes:
        raise AssertionError("the stream was read")


# ------------------------------------------------------------------------------------- line errors


def test_corpus_reports_each_line_error_with_its_line_and_param() -> None:
    result = plan((CORPUS / "line_errors.jsonl").read_bytes())

    assert found(result) == [
        ("invalid_json_line", 3, None),
        ("invalid_json_line", 4, None),
        ("missing_required_parameter", 5, "custom_id"),
        ("missing_required_parameter", 6, "method"),
        ("missing_required_parameter", 6, "url"),
        ("invalid_custom_id", 7, "custom_id"),
        ("duplicate_custom_id", 8, "custom_id"),
        ("invalid_method", 9, "method"),
        ("url_mismatch", 10, "url"),
        ("model_mismatch", 11, "body.model"),
        ("invalid_body", 12, "body"),
        ("invalid_body", 13, "body.messages"),
        ("invalid_body", 14, "body.messages"),
    ]
    assert result.total == 14
    assert result.error_count == 13
    assert not result.ok
    assert result.chunks == []


def test_duplicate_custom_id_uses_the_contract_message_on_every_later_occurrence() -> None:
    result = plan(jsonl(request("a"), request("b"), request("a"), request("a")))

    assert found(result) == [("duplicate_custom_id", 3, "custom_id"), ("duplicate_custom_id", 4, "custom_id")]
    assert {error.message for error in result.errors} == {DUPLICATE_CUSTOM_ID_MESSAGE}


def test_a_custom_id_is_claimed_by_a_line_with_other_problems() -> None:
    result = plan(jsonl(request("a", method="GET"), request("a")))

    assert found(result) == [("invalid_method", 1, "method"), ("duplicate_custom_id", 2, "custom_id")]


def test_an_invalid_custom_id_claims_nothing() -> None:
    result = plan(jsonl(request(""), request("")))

    assert found(result) == [("invalid_custom_id", 1, "custom_id"), ("invalid_custom_id", 2, "custom_id")]


def test_custom_ids_with_lone_surrogates_are_refused_since_no_file_can_hold_them() -> None:
    plain = encode(request("x"))
    lines = [plain, *(plain.replace(b'"x"', b'"x\\' + escape + b'"') for escape in (b"ud800", b"udbff", b"ud800"))]

    result = plan(jsonl(*lines))

    assert found(result) == [("invalid_custom_id", line, "custom_id") for line in (2, 3, 4)]


@pytest.mark.parametrize(
    ("custom_id", "ok"),
    [("x" * 512, True), ("é" * 512, True), ("x" * 513, False), ("", False), (None, False), (7, False)],
)
def test_custom_id_is_a_non_empty_string_of_at_most_512_characters(custom_id: Any, ok: bool) -> None:
    result = plan(jsonl(request(custom_id)))

    assert found(result) == ([] if ok else [("invalid_custom_id", 1, "custom_id")])


@pytest.mark.parametrize("field", ["custom_id", "method", "url", "body"])
def test_each_missing_field_is_named(field: str) -> None:
    result = plan(jsonl(request(**{field: ...})))

    assert found(result) == [("missing_required_parameter", 1, field)]
    assert f"'{field}'" in result.errors[0].message


def test_every_missing_field_of_a_line_is_reported_in_field_order() -> None:
    assert found(plan(jsonl("{}"))) == [
        ("missing_required_parameter", 1, "custom_id"),
        ("missing_required_parameter", 1, "method"),
        ("missing_required_parameter", 1, "url"),
        ("missing_required_parameter", 1, "body"),
    ]


@pytest.mark.parametrize(
    ("field", "value", "code", "param"),
    [
        ("custom_id", None, "invalid_custom_id", "custom_id"),
        ("method", None, "invalid_method", "method"),
        ("url", None, "url_mismatch", "url"),
        ("body", None, "invalid_body", "body"),
    ],
)
def test_a_null_field_is_judged_by_its_value_not_as_missing(field: str, value: Any, code: str, param: str) -> None:
    assert found(plan(jsonl(request(**{field: value})))) == [(code, 1, param)]


@pytest.mark.parametrize("method", ["GET", "post", "PUT", 1])
def test_method_must_be_exactly_post(method: Any) -> None:
    assert found(plan(jsonl(request(method=method)))) == [("invalid_method", 1, "method")]


@pytest.mark.parametrize(
    ("endpoint", "url", "ok"),
    [
        (CHAT, CHAT, True),
        (CHAT, "v1/chat/completions", True),
        ("v1/chat/completions", CHAT, True),
        (CHAT, "/v1/chat/completions/", False),
        (CHAT, "/v1/completions", False),
        (CHAT, "/V1/chat/completions", False),
        (CHAT, "/v1/chat/completions?x=1", False),
        (CHAT, "", False),
    ],
)
def test_url_must_be_the_endpoint_with_an_optional_leading_slash(endpoint: str, url: str, ok: bool) -> None:
    result = plan(jsonl(request(url=url)), endpoint=endpoint)

    assert found(result) == ([] if ok else [("url_mismatch", 1, "url")])


@pytest.mark.parametrize(
    ("body_model", "job_model", "ok"),
    [(MODEL, MODEL, True), ("gpt-4o", MODEL, False), (None, MODEL, False), ("anything", None, True)],
)
def test_body_model_when_present_must_be_the_jobs(body_model: Any, job_model: str | None, ok: bool) -> None:
    line = request(body={"model": body_model, "messages": [{"role": "user", "content": "Hi"}]})

    result = plan(jsonl(line), model=job_model)

    assert found(result) == ([] if ok else [("model_mismatch", 1, "body.model")])


def test_a_body_without_model_is_fine() -> None:
    assert plan(jsonl(request(body={"messages": [{"role": "user", "content": "Hi"}]}))).ok


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        (CHAT, {"messages": [{"role": "user", "content": "Hi"}]}, None),
        (CHAT, {}, "body.messages"),
        (CHAT, {"messages": []}, "body.messages"),
        (CHAT, {"messages": "Hi"}, "body.messages"),
        (CHAT, [], "body"),
        (CHAT, "Hi", "body"),
        ("/v1/completions", {"prompt": "Say hi"}, None),
        ("/v1/completions", {"prompt": ["a", "b"]}, None),
        ("/v1/completions", {"prompt": None}, "body.prompt"),
        ("/v1/completions", {"messages": [1]}, "body.prompt"),
        (EMBEDDINGS, {"input": "text"}, None),
        (EMBEDDINGS, {"input": [[1, 2], [3]]}, None),
        (EMBEDDINGS, {"input": []}, "body.input"),
        (EMBEDDINGS, {"input": 3}, "body.input"),
        (EMBEDDINGS, {}, "body.input"),
        ("/v1/responses", {"input": "Hi"}, None),
        ("/v1/responses", {"input": [{"role": "user", "content": "Hi"}]}, None),
        ("/v1/responses", {"messages": [1]}, "body.input"),
    ],
)
def test_body_needs_what_its_endpoint_needs(endpoint: str, body: Any, param: str | None) -> None:
    result = plan(jsonl(request(url=endpoint, body=body)), endpoint=endpoint)

    assert found(result) == ([] if param is None else [("invalid_body", 1, param)])


@pytest.mark.parametrize(
    "line",
    [b"nope", b"[1, 2]", b'"a string"', b"42", b"null", b'{"a": 1', b'{"a": NaN}', b'{"a": -Infinity}',
     b'{"a": 1e999}', b'{"a": {"b": [0, -1e400]}}', b"[" * 200_000, b"{}{}", b"\xef\xbb\xbf{}"],
)  # fmt: skip
def test_anything_but_one_json_object_is_an_invalid_json_line(line: bytes) -> None:
    result = plan(jsonl(request("before"), line, request("after")))

    assert found(result) == [("invalid_json_line", 2, None)]


def test_a_json_array_line_says_it_is_not_an_object() -> None:
    result = plan(jsonl(b'[{"custom_id": "a"}]'))

    assert found(result) == [("invalid_json_line", 1, None)]
    assert "not a JSON object" in result.errors[0].message


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8_is_that_lines_error_only(bad: bytes) -> None:
    line = encode(request("b")).replace(b'"Hi"', b'"H' + bad + b'i"')

    result = plan(jsonl(request("a"), line, request("c")))

    assert found(result) == [("invalid_json_line", 2, None)]
    assert "UTF-8" in result.errors[0].message
    assert result.total == 3


def test_utf16_is_not_accepted_as_json() -> None:
    line = json.dumps(request()).encode("utf-16-le")

    assert found(plan(line.replace(b"\n\x00", b""))) == [("invalid_json_line", 1, None)]


def test_a_long_client_value_is_cut_short_in_the_message() -> None:
    result = plan(jsonl(request(method="G" * 100_000)))

    assert len(result.errors[0].message) < 200


# ------------------------------------------------------------------------------------ line numbers


def test_line_numbers_are_physical_with_crlf_bom_and_blank_lines() -> None:
    data = (
        BOM
        + b"\r\n"
        + b"   \n"
        + encode(request("a", method="GET"))
        + b"\r\n\r\n\t\r\n"
        + encode(request("b", method="GET"))
        + b"\n\n"
        + encode(request("c", method="GET"))
    )

    result = plan(data)

    assert found(result) == [("invalid_method", 3, "method"), ("invalid_method", 6, "method"),
                             ("invalid_method", 8, "method")]  # fmt: skip
    assert result.total == 3


def test_a_lone_carriage_return_does_not_end_a_line() -> None:
    data = encode(request("a")) + b"\r" + encode(request("b")) + b"\n" + encode(request("c", method="GET"))

    assert found(plan(data)) == [("invalid_json_line", 1, None), ("invalid_method", 2, "method")]


def test_a_final_line_without_terminator_is_validated() -> None:
    result = plan(jsonl(request("a")) + encode(request("b", method="GET")))

    assert found(result) == [("invalid_method", 2, "method")]
    assert result.total == 2


def test_a_bom_is_skipped_only_at_the_start() -> None:
    assert plan(BOM + jsonl(request("a"))).ok
    assert found(plan(jsonl(request("a")) + BOM + jsonl(request("b")))) == [("invalid_json_line", 2, None)]


def test_a_one_megabyte_line_is_fine_even_read_seven_bytes_at_a_time() -> None:
    big = request("big", body={"messages": [{"role": "user", "content": "é" * 600_000}]})
    data = jsonl(request("a"), big, request("b", method="GET"))
    assert len(encode(big)) > 1_000_000

    for read_size in (1 << 20, 7):
        result = plan(data, read_size=read_size, lines_per_chunk=1)
        assert found(result) == [("invalid_method", 3, "method")]
        assert result.total == 3


@pytest.mark.timeout(5)
def test_a_long_line_in_small_reads_takes_linear_time() -> None:
    # 8 MB in 64-byte reads: ~0.1 s when the pieces are joined once, minutes when re-joined on every read.
    line = request("long", body={"messages": ["x" * 8_000_000]})

    assert plan(jsonl(line), read_size=64).ok


# ---------------------------------------------------------------------------------- whole-file errors


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n", b"  \n\t\n", BOM, BOM + b"\n\n", b"\n" * 1000])
def test_no_request_lines_is_an_empty_file(data: bytes) -> None:
    result = plan(data)

    assert found(result) == [("empty_file", None, None)]
    assert result.total == 0
    assert result.error_count == 1


def test_a_declared_size_over_the_limit_fails_without_reading() -> None:
    result = plan_batch(NoReadStream(), endpoint=CHAT, model=MODEL, size=101, max_bytes=100)

    assert found(result) == [("file_too_large", None, None)]
    assert result.error_count == 1


def test_reading_past_the_limit_stops_one_byte_after_it() -> None:
    data = jsonl(*(request(f"r-{i}", method="GET") for i in range(100)))
    stream = StrictStream(data, read_size=64)

    result = plan_batch(stream, endpoint=CHAT, model=MODEL, max_bytes=1000, read_size=64)

    assert found(result) == [("file_too_large", None, None)]
    assert result.error_count == 1
    assert stream.position == 1001


def test_a_file_of_exactly_the_limit_is_accepted() -> None:
    data = jsonl(request("a"), request("b"))

    assert plan(data, max_bytes=len(data), size=len(data)).ok
    assert plan(data, max_bytes=len(data), read_size=5).ok
    assert found(plan(data, max_bytes=len(data) - 1)) == [("file_too_large", None, None)]


def test_too_many_tasks_counts_request_lines_not_blank_ones() -> None:
    data = jsonl(request("a"), "", request("b"), "", request("c"))

    assert plan(data, max_requests=3).ok
    result = plan(data, max_requests=2)
    assert found(result) == [("too_many_tasks", None, None)]
    assert "3" in result.errors[0].message
    assert result.chunks == []


@pytest.mark.parametrize(
    ("inputs", "count"),
    [
        (["one"], 1),
        ([["a", "b", "c"]], 3),
        ([[1, 2, 3]], 1),
        ([[[1, 2], [3], [4, 5]]], 3),
        (["x", ["a", "b"], [7, 8], [[1], [2]]], 6),
    ],
)
def test_embedding_inputs_are_counted_per_input(inputs: list[Any], count: int) -> None:
    data = jsonl(*(request(f"e-{i}", url=EMBEDDINGS, body={"input": value}) for i, value in enumerate(inputs)))

    assert plan(data, endpoint=EMBEDDINGS, max_embedding_inputs=count).ok
    result = plan(data, endpoint=EMBEDDINGS, max_embedding_inputs=count - 1)
    assert found(result) == [("too_many_embedding_inputs", None, None)]
    assert str(count) in result.errors[0].message


def test_embedding_inputs_are_only_limited_on_the_embeddings_endpoint() -> None:
    data = jsonl(request("a", body={"messages": [1], "input": ["a", "b"]}))

    assert plan(data, max_embedding_inputs=1).ok


def test_whole_file_errors_come_first_then_line_errors_in_order() -> None:
    data = jsonl(request("a", method="GET"), request("b"), request("a"))

    result = plan(data, max_requests=2)

    assert found(result) == [
        ("too_many_tasks", None, None),
        ("invalid_method", 1, "method"),
        ("duplicate_custom_id", 3, "custom_id"),
    ]


def test_errors_are_capped_in_line_order_and_counted_in_full() -> None:
    data = jsonl(*(request(f"r-{i}", method="GET") if i % 3 else "{" for i in range(1500)))

    result = plan(data)

    assert len(result.errors) == 1000
    assert result.error_count == 1500
    assert [error.line for error in result.errors] == list(range(1, 1001))
    assert [error.code for error in result.errors[:3]] == ["invalid_json_line", "invalid_method", "invalid_method"]


def test_the_cap_keeps_whole_file_errors() -> None:
    data = jsonl(*(request(f"r-{i}", method="GET") for i in range(20)))

    result = plan(data, max_errors=5, max_requests=10)

    assert found(result)[:2] == [("too_many_tasks", None, None), ("invalid_method", 1, "method")]
    assert len(result.errors) == 5
    assert result.error_count == 21


def test_a_plan_with_no_listed_errors_is_still_not_ok_when_some_were_counted() -> None:
    result = plan(jsonl(request(method="GET")), max_errors=0)

    assert result.errors == []
    assert result.error_count == 1
    assert not result.ok


@pytest.mark.parametrize("options", [{"endpoint": "/v1/images"}, {"lines_per_chunk": 0}, {"read_size": 0}])
def test_bad_arguments_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each option has its own message
        plan(jsonl(request()), **options)


# ------------------------------------------------------------------------------------------- chunks


def test_chunks_cover_consecutive_requests_with_a_shorter_last_one() -> None:
    lines = [encode(request(f"r-{i}")) for i in range(7)]
    data = b"\n".join(lines) + b"\n"

    result = plan(data, lines_per_chunk=3)

    width = len(lines[0]) + 1
    assert all(len(line) + 1 == width for line in lines)
    assert result.chunks == [
        Chunk(chunk=0, first_line=0, line_count=3, start_byte=0, end_byte=3 * width),
        Chunk(chunk=1, first_line=3, line_count=3, start_byte=3 * width, end_byte=6 * width),
        Chunk(chunk=2, first_line=6, line_count=1, start_byte=6 * width, end_byte=7 * width),
    ]
    assert json.loads(json.dumps([dataclasses.asdict(chunk) for chunk in result.chunks]))[2] == {
        "chunk": 2, "first_line": 6, "line_count": 1, "start_byte": 6 * width, "end_byte": 7 * width,
    }  # fmt: skip


def test_chunk_ranges_leave_out_the_bom_and_blank_lines_around_them() -> None:
    a, b = encode(request("a")), encode(request("b"))
    data = BOM + b"\r\n" + a + b"\r\n\n" + b

    result = plan(data, lines_per_chunk=1)

    assert [(c.start_byte, c.end_byte) for c in result.chunks] == [
        (5, 5 + len(a) + 2),
        (5 + len(a) + 3, len(data)),
    ]


# Multi-byte characters, JSON escapes, and separators that str.splitlines would take for line ends.
_PIECES = ("abc", "xyz", "é", "ß", "中文", "🙂", "\u2028", "\u0085", "\x1c", "\r", "\n", "\t", '"', "\\", " ", "\x00")


def _random_text(rng: random.Random) -> str:
    """Text that stresses the line splitter once dumped as JSON."""
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 60)))


def _random_file(rng: random.Random) -> tuple[bytes, list[bytes]]:
    """A valid batch file with random terminators and blank lines, and its request lines in order."""
    parts: list[bytes] = [BOM] if rng.random() < 0.3 else []
    expected: list[bytes] = []
    for i in range(rng.randint(1, 60)):
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            parts.append(rng.choice([b"", b"  ", b"\t", b"\r"]) + rng.choice([b"\n", b"\r\n"]))
        line = encode(request(f"id-{i}-{_random_text(rng)}", body={"messages": [_random_text(rng)]}))
        if rng.random() < 0.2:
            line = b" " + line + b"\t "
        expected.append(line)
        parts.append(line + rng.choice([b"\n", b"\r\n"]))
    if rng.random() < 0.3:
        # No terminator after the last request line (drop the one just added).
        parts[-1] = parts[-1].rstrip(b"\r\n")
    elif rng.random() < 0.3:
        parts.append(b"\n \r\n")
    return b"".join(parts), expected


@pytest.mark.parametrize("seed", range(40))
def test_chunk_byte_ranges_round_trip_through_the_workers_reader(seed: int) -> None:
    rng = random.Random(seed)
    data, expected = _random_file(rng)
    lines_per_chunk = rng.choice([1, 2, 3, 7, 100])

    result = plan(data, lines_per_chunk=lines_per_chunk, read_size=rng.choice([1, 3, 7, 64, 1 << 20]))

    assert result.ok, found(result)
    assert result.total == len(expected)
    assert len(result.chunks) == -(-len(expected) // lines_per_chunk)
    every: list[bytes] = []
    for number, chunk in enumerate(result.chunks):
        assert chunk.chunk == number
        assert chunk.first_line == number * lines_per_chunk
        assert chunk.line_count == min(lines_per_chunk, len(expected) - chunk.first_line)
        body = data[chunk.start_byte : chunk.end_byte]
        got = list(iter_request_lines(io.BytesIO(body), chunk.start_byte, read_size=rng.choice([5, 1 << 20])))
        assert [line for _, _, line in got] == expected[chunk.first_line : chunk.first_line + chunk.line_count]
        assert all(data[offset : offset + len(line)] == line for offset, _, line in got)
        assert all(end in (offset + len(line) + 1, offset + len(line) + 2) for offset, end, line in got[:-1])
        assert got[0][0] == chunk.start_byte
        every += [line for _, _, line in got]
    assert every == expected
    assert [parse_request_line(line)["custom_id"] for line in every] == [
        json.loads(line)["custom_id"] for line in expected
    ]


def test_iter_request_lines_over_a_whole_file_skips_the_bom_and_blank_lines() -> None:
    data = BOM + b"\n" + b"{}\r\n \n" + b"[1]"

    assert list(iter_request_lines(io.BytesIO(data))) == [(4, 8, b"{}"), (10, 13, b"[1]")]


def test_iter_request_lines_keeps_a_bom_that_is_not_at_offset_zero() -> None:
    assert list(iter_request_lines(io.BytesIO(BOM + b"{}\n"), 10)) == [(10, 16, BOM + b"{}")]


# ---------------------------------------------------------------------------------------- streaming


def _mixed_file() -> bytes:
    """A file with a BOM, CRLF, blank lines, invalid lines, unicode and a long line."""
    return (
        BOM
        + jsonl(request("a"), "", request("b", method="GET"), end=b"\r\n")
        + b"\xff\xfe\n"
        + jsonl(request("ü", body={"messages": ["x" * 5000]}), "[]", request("a"), request("c", body={"messages": []}))
        + b"\n  \n"
        + encode(request("d", url="/v1/embeddings"))
    )


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 64, 4096])
@pytest.mark.parametrize("short", [False, True])
def test_tiny_and_short_reads_give_the_same_plan(read_size: int, short: bool) -> None:
    data = _mixed_file()
    stream = StrictStream(data, read_size, short=short)

    result = plan_batch(stream, endpoint=CHAT, model=MODEL, read_size=read_size, lines_per_chunk=2)

    assert result == plan(data, lines_per_chunk=2)
    assert found(result) == [
        ("invalid_method", 3, "method"),
        ("invalid_json_line", 4, None),
        ("invalid_json_line", 6, None),
        ("duplicate_custom_id", 7, "custom_id"),
        ("invalid_body", 8, "body.messages"),
        ("url_mismatch", 11, "url"),
    ]
    assert stream.position == len(data)


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 4096])
def test_tiny_reads_give_the_same_chunks(read_size: int) -> None:
    data = BOM + jsonl(*(request(f"r-{i}") for i in range(10)), end=b"\r\n") + b"\n"
    stream = StrictStream(data, read_size, short=True)

    result = plan_batch(stream, endpoint=CHAT, model=MODEL, read_size=read_size, lines_per_chunk=3)

    assert result.ok
    assert result == plan(data, lines_per_chunk=3)
    assert [c.line_count for c in result.chunks] == [3, 3, 3, 1]


def test_iter_request_lines_honours_read_size() -> None:
    data = jsonl(request("a"), request("b"))
    stream = StrictStream(data, 7)

    lines = list(iter_request_lines(stream, read_size=7))

    assert [line for _, _, line in lines] == [encode(request("a")), encode(request("b"))]


def test_parse_request_line_refuses_what_is_not_an_object() -> None:
    assert parse_request_line(encode(request("a")))["custom_id"] == "a"
    with pytest.raises(ValueError, match="JSON object"):
        parse_request_line(b"[1]")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"seed": 123456789012345678901234567890}',  # past 64 bits: orjson alone would make it a float
        b'{"n": -18446744073709551616, "m": 18446744073709551615}',
        b'{"text": "\\ud800 alone"}',  # an escaped lone surrogate, which orjson refuses and json takes
        b'{"x": 1.7976931348623157e308, "y": -0.0, "z": 1e-07, "a": 1, "a": 2}',
        '{"text": "é 😀 \\u2028", "list": [true, false, null, 0.1]}'.encode(),
    ],
)
def test_parse_request_line_gives_what_the_strict_decoder_gives(raw: bytes) -> None:
    assert repr(parse_request_line(raw)) == repr(json.loads(raw.decode()))


@pytest.mark.parametrize(
    "raw", [b'{"x": NaN}', b'{"x": 1e999}', b'{"x": [-1e400]}', b'{"x": "\xff"}', b'{"x": 1', b'\xef\xbb\xbf{"x": 1}']
)
def test_parse_request_line_refuses_what_the_strict_decoder_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # json's and orjson's errors are both ValueErrors
        parse_request_line(raw)
