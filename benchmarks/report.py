"""The one shape every benchmark reports in, so `make bench` can put them in one table.

Each `benchmarks/bench_*.py` prints what it measured for a person and, given `--json PATH`, writes its
rows there: one row per target of docs/benchmarks.md. A row carries the figure compared with the
target (usually a ratio to a baseline measured in the same run: this machine is shared and noisy), the
baseline it was divided by, and, when the target is missed, the measured cause.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    goal: str  # what is measured, e.g. "worker throughput / ideal, 100 in flight"
    value: float  # the figure the target is about
    unit: str  # "x", "ms/line", "calls/line", "$ per 1M lines", ...
    target: str  # as the issue states it, e.g. "≥ 0.9x"
    met: bool
    baseline: str  # what the figure is divided by, with its own measured value
    detail: str = ""  # the arithmetic, and when missed: by how much, and the measured cause


def json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="also write the rows for `make bench` to this file")


def write_rows(path: Path | None, rows: list[Row]) -> None:
    for row in rows:
        mark = "met" if row.met else "MISSED"
        print(f"{row.goal}: {row.value:g} {row.unit} (target {row.target}: {mark}); baseline {row.baseline}")
    if path is not None:
        path.write_text(json.dumps({"rows": [asdict(row) for row in rows]}, indent=1))
