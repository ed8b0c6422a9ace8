"""Benchmark plan_batch on a ~200 MB, 50,000-line batch file against a bare split + orjson.loads loop.

Run: .venv/bin/python benchmarks/bench_validation.py [--runs N] [--no-tiny-lines] [--json PATH]

Each measurement runs in a fresh interpreter so that its peak RSS is its own. The file is written to a
temporary directory (deleted at the end) and is in the page cache for every run, so this measures CPU, not
disk. The baseline is the least any JSONL reader does: 1 MiB reads, split on newlines, orjson.loads per
line (which decodes UTF-8 as it parses). The tiny-lines case is the worst for memory: the byte limit
filled with minimal lines, millions of custom_ids to remember.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import Row, json_argument, write_rows

from batchline.planning import plan_batch

ENDPOINT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
LINES = 50_000
TARGET_BYTES = 200_000_000  # under the 200 MiB (209,715,200 bytes) limit, so the file is valid
READ_SIZE = 1 << 20
MIB = 1 << 20
TARGET = 1.2
# Resident memory plan_batch may add over 200 MB of realistic lines: a line, a read and the custom_ids.
MEMORY_TARGET_MIB = 64


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
    """The least any JSONL reader does: 1 MiB reads, split on newlines, orjson.loads per line."""
    lines = 0
    with path.open("rb") as stream:
        rest = b""
        while block := stream.read(READ_SIZE):
            pieces = (rest + block).split(b"\n")
            rest = pieces.pop()
            for piece in pieces:
                if piece:
                    orjson.loads(piece)
                    lines += 1
        if rest:
            orjson.loads(rest)
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


def profiled(path: Path) -> dict[str, Any]:
    """plan_batch under cProfile: where its time goes beyond the baseline's, for a missed target."""
    profile = cProfile.Profile()
    result = profile.runcall(planner, path)
    # (file, line, function) -> (primitive calls, calls, own time, cumulative time, callers)
    own = sorted(((v[2], k) for k, v in pstats.Stats(profile).stats.items()), reverse=True)  # type: ignore[attr-defined]
    result["profile"] = ", ".join(f"{Path(k[0]).name}:{k[2]} {t:.2f} s" for t, k in own[:6])
    return result


def measure(kind: str, path: Path) -> dict[str, Any]:
    """Run one measurement in this process (a fresh child) and report time and memory."""
    work = {"baseline": baseline, "plan": planner, "plan-tracemalloc": planner, "plan-profile": profiled}[kind]
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


def compare(path: Path, runs: int, label: str, *, traced: bool = True) -> dict[str, Any]:
    """Time the baseline and the planner, best of `runs` each, and print and return what was measured."""
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
    ratio = best["plan"]["seconds"] / best["baseline"]["seconds"]
    print(f"  plan_batch / baseline time: {ratio:.2f}x")
    measured = {"size": size, "runs": runs, "ratio": ratio, **best}
    if traced:
        measured["traced_peak_mib"] = in_child("plan-tracemalloc", path)["traced_peak_mib"]
        print(f"  plan_batch under tracemalloc: peak traced {measured['traced_peak_mib']:.1f} MiB")
    return measured


def rows(realistic: dict[str, Any], tiny: dict[str, Any] | None, path: Path) -> list[Row]:
    """The rows of docs/benchmarks.md: CPU against the baseline, and memory."""
    base, plan = realistic["baseline"], realistic["plan"]
    ratio = realistic["ratio"]
    mib_s = realistic["size"] / MIB / plan["seconds"]
    detail = (
        f"plan_batch {plan['seconds']:.2f} s ({mib_s:.0f} MiB/s) vs baseline {base['seconds']:.2f} s, "
        f"best of {realistic['runs']} each, {LINES:,} lines, {realistic['size'] / MIB:.0f} MiB"
    )
    if ratio > TARGET:
        profile = in_child("plan-profile", path)["profile"]
        detail = f"missed by {ratio / TARGET - 1:.0%}; plan_batch's time by function (cProfile): {profile}. " + detail
    growth = plan["rss_growth_mib"]
    memory = f"peak RSS growth {growth:.1f} MiB (baseline {base['rss_growth_mib']:.1f}), tracemalloc peak "
    memory += f"{realistic['traced_peak_mib']:.1f} MiB"
    if tiny is not None:
        memory += (
            f"; worst case, 200 MiB of minimal lines ({tiny['plan']['lines']:,}): growth "
            f"{tiny['plan']['rss_growth_mib']:.0f} MiB, a 16-byte digest per custom_id to find duplicates"
        )
    return [
        Row(
            goal="Plan validation CPU / a bare orjson loop, 200 MB",
            value=round(ratio, 2),
            unit="x",
            target=f"≤ {TARGET}x",
            met=ratio <= TARGET,
            baseline=f"1 MiB reads, split, orjson.loads per line: {base['seconds']:.2f} s",
            detail=detail,
        ),
        Row(
            goal="Plan validation memory, 200 MB of realistic lines",
            value=round(growth, 1),
            unit="MiB peak RSS growth",
            target=f"flat: ≤ {MEMORY_TARGET_MIB} MiB, whatever the file's size",
            met=growth <= MEMORY_TARGET_MIB,
            baseline=f"the baseline loop's growth, {base['rss_growth_mib']:.1f} MiB",
            detail=memory,
        ),
    ]


def main() -> None:
    """Generate the files, compare, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="best of N runs each (default 3)")
    parser.add_argument("--no-tiny-lines", action="store_true", help="skip the worst case for memory")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    json_argument(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return
    print(f"Python {sys.version.split()[0]}, read size {READ_SIZE // 1024} KiB")
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        path = Path(tmp) / "batch.jsonl"
        write_realistic(path)
        assert path.stat().st_size <= 200 * MIB, "the realistic file must be valid"
        realistic = compare(path, args.runs, f"{LINES:,} chat requests")
        tiny = None
        if not args.no_tiny_lines:
            tiny_path = Path(tmp) / "tiny.jsonl"
            write_tiny(tiny_path)
            tiny = compare(tiny_path, 1, "worst case: 200 MiB of minimal lines", traced=False)
            tiny_path.unlink()
        write_rows(args.json, rows(realistic, tiny, path))


if __name__ == "__main__":
    main()
