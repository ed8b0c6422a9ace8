"""Partial results' cursor codec and a segment's line order, without AWS."""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Iterator

import pytest

from batchline import partials
from batchline.errors import InvalidRequest
from batchline.partials import Cursor, decode, encode, interleave

BATCH = "batch_abc123"


def lines(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix}{i}\n".encode() for i in range(count)]


@pytest.mark.parametrize(
    "cursor",
    [Cursor(), Cursor(3), Cursor(0, {0: 5}), Cursor(2, {2: 1, 7: 40_000, 8: 3}), Cursor(10**6, {10**6 + 9: 2**40})],
)
def test_a_cursor_decodes_to_what_was_encoded(cursor: Cursor) -> None:
    assert decode(BATCH, encode(BATCH, cursor)) == cursor


def test_random_cursors_survive_the_round_trip_and_stay_url_safe() -> None:
    rng = random.Random(5)
    for _ in range(300):
        done = rng.randrange(50)
        chunks = sorted(rng.sample(range(done, done + 400), rng.randrange(30)))
        cursor = Cursor(done, {c: rng.randrange(1, 10**6) for c in chunks})
        text = encode(BATCH, cursor)
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert decode(BATCH, text) == cursor


def test_a_cursor_with_as_many_chunks_read_in_part_as_allowed_fits_a_query_string() -> None:
    cursor = Cursor(0, {c * 7: 49_999 - c for c in range(partials.MAX_PARTIAL_CHUNKS + 1)})
    assert len(encode(BATCH, cursor)) < partials.MAX_CURSOR_CHARS


def deflated(payload: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(payload)).rstrip(b"=").decode()


GOOD = encode(BATCH, Cursor(1, {3: 4}))
TAG = partials._tag(BATCH)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a cursor!",
        "abc",
        GOOD[:-3],  # cut short
        GOOD + "AAAA",  # trailing bytes
        "A" * (partials.MAX_CURSOR_CHARS + 1),
        encode("batch_other", Cursor(1, {3: 4})),  # another batch's
        deflated(bytes([2, *TAG, 1])),  # another version
        deflated(bytes([1, *TAG])),  # no done count
        deflated(bytes([1, *TAG, 1, 0])),  # a chunk without its lines
        deflated(bytes([1, *TAG, 1, 0, 0])),  # a chunk read in part holding no line
        deflated(bytes([1, *TAG, 0x81, 0x00])),  # an overlong number: one position, two spellings
        deflated(bytes([1, *TAG, 0x81])),  # a number cut short
    ],
)
def test_anything_but_a_cursor_of_this_batch_is_refused_naming_after(text: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode(BATCH, text)
    assert raised.value.param == "after"


def test_runs_interleave_output_and_error_lines_output_first() -> None:
    out, err = lines("o", 5), lines("e", 1)
    assert list(interleave(iter(out), iter(err), [3, 1, 2])) == [*out[:3], err[0], *out[3:]]


def test_a_segment_that_starts_with_an_error_line_has_a_first_run_of_zero() -> None:
    out, err = lines("o", 1), lines("e", 2)
    assert list(interleave(iter(out), iter(err), [0, 2, 1])) == [*err, out[0]]
    assert list(interleave(iter([]), iter(err), [0, 2])) == err


def test_a_segment_without_runs_is_its_output_lines_then_its_error_lines() -> None:
    out, err = lines("o", 2), lines("e", 2)
    assert list(interleave(iter(out), iter(err), None)) == [*out, *err]


def test_interleaving_reads_a_part_only_as_far_as_it_is_asked() -> None:
    read: list[bytes] = []

    def err() -> Iterator[bytes]:
        for line in lines("e", 3):
            read.append(line)
            yield line

    taken = list(zip(range(2), interleave(iter(lines("o", 2)), err(), [2, 3]), strict=False))
    assert len(taken) == 2 and read == []
