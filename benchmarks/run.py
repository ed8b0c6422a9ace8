"""`make bench`: run every benchmark, each against its baseline in the same run, and write docs/benchmarks.md.

Each `benchmarks/bench_*.py` runs in its own interpreter (so its memory and imports are its own) with
`--json FILE`, and reports rows in the shape of `benchmarks/report.py`. A benchmark that fails is a
row that says so, not a missing line: the table always shows every target.

    .venv/bin/python benchmarks/run.py [--only NAME ...] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# In the order of the table: orchestration first, then the worker, plan, the api, the local cloud.
BENCHMARKS = ["cost", "budget", "sharing", "worker", "validation", "coldstart", "e2e"]
TIMEOUT_SECONDS = 1200


def _machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    memory = ""
    try:
        total = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        kib = int(total.split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {cpus} CPUs ({model}){memory}, Python {platform.python_version()}"


def run_one(name: str) -> tuple[list[dict[str, object]], float, str]:
    """The rows of one benchmark, its wall time, and its output's tail when it failed."""
    script = ROOT / "benchmarks" / f"bench_{name}.py"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "rows.json"
        started = time.monotonic()
        try:
            done = subprocess.run(  # noqa: S603  # this interpreter, one of our own scripts
                [sys.executable, str(script), "--json", str(out)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [], time.monotonic() - started, f"timed out after {TIMEOUT_SECONDS} s"
        took = time.monotonic() - started
        sys.stdout.write(done.stdout)
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            return [], took, f"exit {done.returncode}: " + " / ".join(tail)
        rows: list[dict[str, object]] = json.loads(out.read_text())["rows"]
        return rows, took, ""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(results: dict[str, tuple[list[dict[str, object]], float, str]], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (benchmarks/run.py); do not edit by hand. Every figure is measured in the run",
        "that wrote this file, each against a baseline measured in the same run: the machine is shared and",
        "noisy, so ratios are what compare across runs. Benchmarks are not tests; `make test` does not run them.",
        "",
        f"- When: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_machine()}",
        f"- Command: `{command}`",
        "",
        "| benchmark | goal | measured | target | met | baseline | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (rows, _took, failure) in results.items():
        if failure:
            lines.append(f"| {name} | (did not finish) | | | no | | {_cell(failure)} |")
            continue
        for row in rows:
            value = row["value"]
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            lines.append(
                f"| {name} | {_cell(row['goal'])} | {shown} {_cell(row['unit'])} | {_cell(row['target'])} | "
                f"{'yes' if row['met'] else '**no**'} | {_cell(row['baseline'])} | {_cell(row.get('detail', ''))} |"
            )
    lines += ["", "Wall time per benchmark: " + ", ".join(f"{n} {r[1]:.0f} s" for n, r in results.items()), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    chosen = args.only or BENCHMARKS
    results = {}
    for name in chosen:
        print(f"== {name}", flush=True)
        results[name] = run_one(name)
    command = "make bench" if not args.only else f"python benchmarks/run.py --only {' '.join(chosen)}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, command))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
