"""The worker's log of answers: input order past gaps, and the runs a segment records."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

from batchline.checkpoints import Answer, Log, run_lengths
from batchline.models import Chunk


def answer(ok: bool) -> Answer:
    return Answer(ok, b"{}\n", (0, 0, 0, 0, 0), 0)


def test_runs_alternate_output_and_error_lines_output_first() -> None:
    assert run_lengths([]) == [0]
    assert run_lengths([answer(True), answer(True), answer(False), answer(True)]) == [2, 1, 1]
    assert run_lengths([answer(False), answer(False), answer(True)]) == [0, 2, 1]


def test_the_log_keeps_answers_past_a_gap_and_counts_the_runs_of_its_prefix_as_it_grows() -> None:
    # Never due (no time passes, no bound is near): every answer stays in the log, in input order.
    run = SimpleNamespace(monotonic=lambda: 0.0, checkpoint_seconds=1e9, segment_bytes=1 << 30)
    chunk = Chunk(chunk=0, first_line=0, line_count=200, start_byte=0, end_byte=1)
    kinds = [random.Random(7).random() < 0.4 for _ in range(200)]
    order = list(range(200))
    random.Random(8).shuffle(order)

    async def fill() -> None:
        log = Log(run, "batch_x", chunk, (0, 0), None)  # type: ignore[arg-type]
        for number in order:
            log.add(number, answer(not kinds[number]))
            assert log._ready_runs == len(run_lengths(log._ready)) or not log._ready
        assert [a.ok for a in log._ready] == [not k for k in kinds]

    asyncio.run(fill())
