"""Benchmark plan_batch on a ~200 MB, 50,000-line batch file against a bare split + json.loads loop.

Run: .venv/bin/python benchmarks/bench_validation.py [--runs N] [--tiny-lines]

Each measurement runs in a fresh interpreter so that its peak RSS is its own. The file is written to a
temporary directory (deleted at the end) and is in the page cache for every run, so this measures CPU, not
disk. `--tiny-lines` adds the worst case for memory: the byte limit filled with minimal lines, millions of
custom_ids to remember.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))

from batchline.planning import plan_batch

ENDPOINT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
LINES = 50_000
TARGET_BYTES = 200_000_000  # under the 200 MiB (209,715,200 bytes) limit, so the file is valid
READ_SIZE = 1 << 20
MIB = 1 << 20


def write_realistic(path: Path) -> None:
    """50,000 chat requests of varied length (about 1-7 KB, some non-ASCII), TARGET_BYTES in all."""
    rng = random.Random(7)
    words = ["the", "batch", "model", "request", "token", "line", "café", "naïve", "日本語", "🙂", "data"]
    pool = " ".join(rng.choice(words) for _ in range(400_000))
    bytes_per_char = len(pool.encode()) / len(pool)
    # Characters of prompt per line: the target less what the JSON around the prompt adds.
    mean = int((TARGET_BYTES / LINES - 190) / bytes_per_char)
    with path.open("wb") as out:
        for i in range(LINES):
            size = rng.randint(mean // 4, 2 * mean - mean // 4)
            start = rng.randrange(len(pool) - size)
            line = {
                "custom_id": f"request-{i:06d}",
                "method": "POST",
                "url": ENDPOINT,
                "body": {
                    "model": MODEL,
                    "messages": [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": pool[start : start + size]},
                    ],
                    "max_tokens": 64,
                },
            }
            out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")


def write_tiny(path: Path) -> None:
    """The byte limit filled with the shortest plausible lines: the worst case for the custom_id set."""
    with path.open("wb") as out:
        written, i = 0, 0
        while True:
            line = b'{"custom_id":"%d","method":"POST","url":"/v1/chat/completions","body":{"messages":[1]}}\n' % i
            if written + len(line) > 200 * MIB:
                return
            out.write(line)
            written += len(line)
            i += 1


def baseline(path: Path) -> dict[str, Any]:
    """The least any JSONL reader does: 1 MiB reads, split on newlines, json.loads per line."""
    lines = 0
    with path.open("rb") as stream:
        rest = b""
        while block := stream.read(READ_SIZE):
            pieces = (rest + block).split(b"\n")
            rest = pieces.pop()
            for piece in pieces:
                if piece:
                    json.loads(piece)
                    lines += 1
        if rest:
            json.loads(rest)
            lines += 1
    return {"lines": lines}


def planner(path: Path) -> dict[str, Any]:
    """plan_batch streamed from an open file, as the Plan Lambda streams from S3."""
    with path.open("rb") as stream:
        plan = plan_batch(stream, endpoint=ENDPOINT, model=MODEL, size=path.stat().st_size)
    return {"lines": plan.total, "chunks": len(plan.chunks), "errors": plan.error_count}


def current_rss_kib() -> int:
    """Resident memory now (Linux, as on Lambda); the peak so far elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return pages * resource.getpagesize() // 1024


def measure(kind: str, path: Path) -> dict[str, Any]:
    """Run one measurement in this process (a fresh child) and report time and memory."""
    work = {"baseline": baseline, "plan": planner, "plan-tracemalloc": planner}[kind]
    traced = kind.endswith("tracemalloc")
    if traced:
        tracemalloc.start()
    # Current, not peak: importing pydantic peaks higher than it settles, which would hide the growth.
    rss_before = current_rss_kib()
    began = time.perf_counter()
    result = work(path)
    seconds = time.perf_counter() - began
    result |= {
        "seconds": seconds,
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }
    if traced:
        result["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / MIB
    return result


def in_child(kind: str, path: Path) -> dict[str, Any]:
    """measure() in a fresh interpreter."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--child", kind, str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def compare(path: Path, runs: int, label: str) -> None:
    """Time the baseline and the planner, best of `runs` each, and print the ratio."""
    size = path.stat().st_size
    print(f"\n{label}: {size / MIB:.1f} MiB ({size:,} bytes)")
    best: dict[str, dict[str, Any]] = {}
    for _ in range(runs):
        for kind in ("baseline", "plan"):
            result = in_child(kind, path)
            if kind not in best or result["seconds"] < best[kind]["seconds"]:
                best[kind] = result
    for kind, result in best.items():
        print(
            f"  {kind:9} {result['seconds']:7.2f} s  {size / MIB / result['seconds']:7.1f} MiB/s  "
            f"peak RSS growth {result['rss_growth_mib']:7.1f} MiB  lines {result['lines']:,}"
            + (f"  chunks {result['chunks']:,}  errors {result['errors']}" if "chunks" in result else "")
        )
    print(f"  plan_batch / baseline time: {best['plan']['seconds'] / best['baseline']['seconds']:.2f}x")
    traced = in_child("plan-tracemalloc", path)
    print(f"  plan_batch under tracemalloc: peak traced {traced['traced_peak_mib']:.1f} MiB")


def main() -> None:
    """Generate the files, compare, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="best of N runs each (default 3)")
    parser.add_argument("--tiny-lines", action="store_true", help="also run the worst case for memory")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return
    print(f"Python {sys.version.split()[0]}, read size {READ_SIZE // 1024} KiB")
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        path = Path(tmp) / "batch.jsonl"
        write_realistic(path)
        assert path.stat().st_size <= 200 * MIB, "the realistic file must be valid"
        compare(path, args.runs, f"{LINES:,} chat requests")
        path.unlink()
        if args.tiny_lines:
            write_tiny(path)
            compare(path, 1, "worst case: 200 MiB of minimal lines")


if __name__ == "__main__":
    main()
