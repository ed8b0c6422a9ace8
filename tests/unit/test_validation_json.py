"""A line is judged as Python's json judges it, whatever parser reads it first.

Validation parses with orjson where that is safe, and it differs from json at the edges: it refuses lone
surrogate escapes, numbers that overflow to infinity and nesting past 1,024 levels (which json takes),
turns integers beyond 64 bits into floats, and words its errors its own way. Each line below sits on
one of those edges; the verdicts and messages are json's, as the contract has always given them, but
for a number that overflows: json reads it as infinity, and it is refused as NaN is (issue 20).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchline.jsonl import parse_request_line
from batchline.planning import plan_batch
from batchline.rules import LineRules

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MODEL = "gpt-4o-mini"
GOOD = b'{"custom_id": "%s", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [%s]}}'


def line(custom_id: str = "r", message: bytes = b'{"role": "user", "content": "Hi"}') -> bytes:
    return GOOD % (custom_id.encode(), message)


def errors(*lines: bytes, **options: Any) -> list[tuple[str, int | None, str, str | None]]:
    """plan_batch's errors over a file of these lines, as (code, line, message, param)."""
    options.setdefault("endpoint", CHAT)
    options.setdefault("model", MODEL)
    plan = plan_batch(io.BytesIO(b"\n".join(lines) + b"\n"), **options)
    return [(error.code, error.line, error.message, error.param) for error in plan.errors]


def not_json(detail: str) -> str:
    return f"This line is not parseable as valid JSON: {detail}."


OVERFLOW = "%s is out of range (it overflows to infinity, which JSON cannot carry)"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"a": NaN}', not_json("NaN is not valid JSON")),
        (b'{"a": -Infinity}', not_json("-Infinity is not valid JSON")),
        (b'{"a": 1e999}', not_json(OVERFLOW % "1e999")),
        (b'{"a": [1, {"b": -1E+400}]}', not_json(OVERFLOW % "-1E+400")),
        (line("x", b'{"role": "user", "content": "Hi", "temperature": 1e999}'), not_json(OVERFLOW % "1e999")),
        (b'{"a": 1' + b"0" * 400 + b".5}", not_json(OVERFLOW % ("1" + "0" * 19 + "..."))),  # shown cut short
        (b'{"a": "x\ty"}', not_json("Invalid control character at (column 9)")),
        (b'{"a": 1,}', not_json("Illegal trailing comma before end of object (column 8)")),
        (b'{"a": 01}', not_json("Expecting ',' delimiter (column 8)")),
        (b'{"a": 1} x', not_json("Extra data (column 10)")),
        (b'\xef\xbb\xbf{"a": 1}', not_json("Expecting value (column 1)")),
        (b'{"a": "\\x"}', not_json("Invalid \\escape (column 8)")),
        (b'{"a": "\\u12"}', not_json("Invalid \\uXXXX escape (column 9)")),
        (b'{"a": "\xff"}', "This line is not valid UTF-8 (byte 8)."),
        (b'{"a": "\xed\xa0\x80"}', "This line is not valid UTF-8 (byte 8)."),
        (b"[" * 20_000 + b"]" * 20_000, not_json("it is nested too deeply")),
        (b"[1, 2]", "This line is an array, not a JSON object."),
        (b"12345678901234567890123", "This line is a number, not a JSON object."),
    ],
)
def test_a_line_json_refuses_is_refused_with_jsons_own_words(bad: bytes, message: str) -> None:
    assert errors(line("a"), bad, line("b")) == [("invalid_json_line", 2, message, None)]


@pytest.mark.parametrize(
    "escape",
    [b"\\ud800", b"\\udbff", b"\\udc00", b"\\uDFFF", b"\\ud800\\u0041", b"\\udc00\\ud800"],
)
def test_lone_surrogate_escapes_are_refused_with_their_line(escape: bytes) -> None:
    in_custom_id = GOOD % (b"x" + escape, b"1")
    in_body = line("y", b'{"role": "user", "content": "a' + escape + b'"}')
    in_a_key = line("z", b'{"role' + escape + b'": "user"}')
    unwritable = "This line holds a string that cannot be written as UTF-8 (an escaped lone surrogate)."

    assert errors(line("a"), in_custom_id, in_body, in_a_key) == [
        (
            "invalid_custom_id",
            2,
            "Invalid 'custom_id': it holds an escaped lone surrogate, which cannot be written as UTF-8.",
            "custom_id",
        ),
        ("invalid_json_line", 3, unwritable, None),
        ("invalid_json_line", 4, unwritable, None),
    ]


@pytest.mark.parametrize(
    "value",
    [
        b'"\\ud83d\\ude00 \\u00e9 \\ud7ff"',  # a surrogate pair, and a Hangul escape that starts with \ud
        b"1.7976931348623157e308",  # the largest double: the edge of overflow, on the near side
        b"-1e-400",  # underflows to -0.0, as every JSON reader of doubles reads it
        b"12345678901234567890123",  # beyond 64 bits
        b"-9223372036854775809",
        b"[" * 2_000 + b"]" * 2_000,  # deeper than orjson goes, not than json does
        b'{"k": 1, "k": 2}',
    ],
)
def test_a_line_json_takes_is_taken(value: bytes) -> None:
    assert errors(line("a", b'{"role": "user", "content": "x", "extra": %s}' % value)) == []


def test_duplicate_keys_keep_the_last_value_as_json_does() -> None:
    twice = b'{"custom_id": "a", "method": "GET", "method": "POST", "url": "/v1/embeddings", "custom_id": "b"}'

    mismatch = "The url \"/v1/embeddings\" does not match the batch's endpoint '/v1/chat/completions'."

    assert errors(twice, line("b")) == [
        ("url_mismatch", 1, mismatch, "url"),
        ("missing_required_parameter", 1, "Missing required parameter: 'body'.", "body"),
        ("duplicate_custom_id", 2, errors(line("b"), line("b"))[0][2], "custom_id"),
    ]


def test_a_token_array_of_integers_beyond_64_bits_is_still_one_embedding_input() -> None:
    tokens = b'{"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"input": [%s, 1, 2]}}'
    huge = tokens % b"18446744073709551616"

    assert errors(huge, endpoint=EMBEDDINGS, max_embedding_inputs=1) == []
    assert errors(tokens % b"1e20", endpoint=EMBEDDINGS, max_embedding_inputs=1)[0][0] == "too_many_embedding_inputs"


def test_a_request_line_is_read_back_with_jsons_values() -> None:
    raw = b'{"a": 12345678901234567890123, "b": -9223372036854775809, "c": 1e308, "d": "\\ud83d\\ude00", "e": 0.1}'

    value = parse_request_line(raw)

    assert value == json.loads(raw)
    assert [type(value[key]) for key in "abcde"] == [int, int, float, str, float]


def _numbers() -> st.SearchStrategy[str]:
    digits = st.text("0123456789", min_size=1, max_size=30).map(lambda d: d.lstrip("0") or "0")
    exponent = st.one_of(st.just(""), st.integers(-400, 400).map(lambda e: f"e{e}"))
    fraction = st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=20).map(lambda f: "." + f))
    return st.tuples(st.sampled_from(["", "-"]), digits, fraction, exponent).map("".join)


def _json_texts() -> st.SearchStrategy[str]:
    """JSON text with the edges where parsers differ: numbers, escapes, surrogates, duplicate keys."""
    escapes = st.sampled_from(["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u00e9", "\\n", "\\/", "\\x", "\t", "é"])
    strings = st.lists(st.one_of(st.text(max_size=5), escapes), max_size=4).map(lambda parts: f'"{"".join(parts)}"')
    edges = ["true", "null", "NaN", "-Infinity", "1e400", "01", "1.", "18446744073709551616", "-9223372036854775809"]
    scalars = st.one_of(_numbers(), strings, st.sampled_from(edges))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
            st.lists(st.tuples(st.sampled_from(['"custom_id"', '"input"', '"a"', "1"]), inner), max_size=4).map(
                lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
            ),
        ),
        max_leaves=12,
    )


def _request_lines() -> st.SearchStrategy[bytes]:
    field = st.sampled_from(["custom_id", "method", "url", "body", "input", "messages", "model"])
    request = st.lists(st.tuples(field, _json_texts()), max_size=5).map(
        lambda pairs: "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"
    )
    embedding = '{{"custom_id":{0},"method":"POST","url":"/v1/embeddings","body":{{"input":[{1}, 1],"model":{0}}}}}'
    body = st.tuples(_json_texts(), _json_texts()).map(lambda pair: embedding.format(*pair))
    text = st.one_of(request, body, _json_texts())
    return st.one_of(text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=40))


@settings(max_examples=400, deadline=None)
@given(st.lists(_request_lines(), min_size=1, max_size=8))
def test_orjson_and_json_give_every_line_the_same_verdict(lines: list[bytes]) -> None:
    # Given two files' worth of rules state, one read by orjson first (check) and one by json alone
    fast, reference = LineRules(EMBEDDINGS, MODEL), LineRules(EMBEDDINGS, MODEL)
    for raw in lines:
        # Then each line gets the same problems, in the same order, with the same words
        assert fast.check(raw) == reference._check_refused(raw), raw
    # And what spans lines is the same
    assert (fast.custom_ids, fast.embedding_inputs) == (reference.custom_ids, reference.embedding_inputs)
