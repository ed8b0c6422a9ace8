"""Step Functions payloads: the manifest's Chunk, one item of the Distributed Map and one worker's work."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One Map item: a run of consecutive request lines and the exact bytes that hold them."""

    chunk: int
    first_line: int
    line_count: int
    start_byte: int
    end_byte: int
