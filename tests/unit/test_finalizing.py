"""Finalize's merge of the workers' part files, at its edge: what it holds in memory while it writes."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from batchline import merging

PART = 8 * 1024 * 1024  # a worker's largest part file (its segment_bytes)


class Body:
    """A GET's streaming body whose bytes exist only as they are read, as on a socket."""

    def __init__(self, fill: int, size: int) -> None:
        self.fill, self.size, self.closed = fill, size, False

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        for start in range(0, self.size, chunk_size):
            yield bytes([self.fill]) * min(chunk_size, self.size - start)

    def close(self) -> None:
        self.closed = True


class Objects:
    """The bucket's part files, each `PART` bytes of its own fill byte; the bodies it handed out."""

    def __init__(self) -> None:
        self.bodies: list[Body] = []

    def open(self, key: str, *, version_id: str | None = None) -> Body:
        self.bodies.append(Body(int(key), PART))
        return self.bodies[-1]


class Sink:
    """A writer that keeps only what it was given, in order: (fill byte, bytes)."""

    def __init__(self) -> None:
        self.runs: list[list[int]] = []

    def write(self, data: bytes) -> None:
        fill = data[0]
        if self.runs and self.runs[-1][0] == fill:
            self.runs[-1][1] += len(data)
        else:
            self.runs.append([fill, len(data)])


def test_the_part_files_stream_through_a_block_at_a_time_not_held_whole_while_others_are_read() -> None:
    # Four whole 8 MiB parts read ahead held 32 MiB (58 MiB at its peak, here): finalize's was the largest
    # live Python allocation of a 50,000-line local run, growing with the batch until the read-ahead filled.
    objects = Objects()
    out, err = Sink(), Sink()
    steps: list[Any] = [(str(n), out if n % 3 else err) for n in range(1, 9)]
    tracemalloc.start()
    try:
        merging._write_in_order(SimpleNamespace(objects=objects), steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.runs == [[n, PART] for n in range(1, 9) if n % 3]
    assert err.runs == [[n, PART] for n in range(1, 9) if not n % 3]
    assert all(body.closed for body in objects.bodies)
    assert len(objects.bodies) == 8
    assert peak < PART, peak


def test_after_a_failed_write_the_parts_opened_ahead_are_closed() -> None:
    class Failing(Sink):
        def write(self, data: bytes) -> None:
            if data[0] == 2:
                raise OSError("upload failed")
            super().write(data)

    objects = Objects()
    steps: list[Any] = [(str(n), Failing()) for n in range(1, 7)]
    try:
        merging._write_in_order(SimpleNamespace(objects=objects), steps)
    except OSError:
        pass
    else:
        raise AssertionError("the failed write was swallowed")
    assert len(objects.bodies) >= 2
    assert all(body.closed for body in objects.bodies)
