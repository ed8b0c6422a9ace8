"""One whole batch through the in-process local cloud, at a small and a large size, each in a fresh process.

Run: .venv/bin/python benchmarks/bench_e2e.py [--small 5000] [--large 50000] [--json PATH]

Each size runs in its own interpreter (so its peak RSS is its own): the local cloud starts (not
measured), then the openai SDK uploads a generated chat batch, creates it on the seeded demo job
(mock provider), polls it to its end and downloads the output, which must answer every custom_id
exactly once. Measured over that window: process CPU seconds (every thread: the functions, moto, Step
Functions, uvicorn and the client), wall time, peak RSS (ru_maxrss, start-up included), and what the
run cost in AWS terms (localcloud.metering): API calls by caller, service and operation, Step Functions
state transitions, and Lambda invocations with billed duration and configured memory.

`measure_batch(lines)` does one run in this process and answers plain data: the cost-model benchmark
imports it. The rows compare the large run with the small one (per line), in the same run of this script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from report import Row, json_argument, write_rows

ENDPOINT = "/v1/chat/completions"
# The api function's direct upload limit (the template's MaxUploadBytes default), also the upload part size.
PART_BYTES = 4 * 1024 * 1024
TERMINAL = ("completed", "failed", "cancelled", "expired")
CPU_TARGET = 1.1
RSS_TARGET = 1.2


def generated(lines: int) -> bytes:
    """A chat batch of `lines` requests (the shape localcloud.demo generates)."""
    return b"".join(
        json.dumps({
            "custom_id": f"request-{i + 1}",
            "method": "POST",
            "url": ENDPOINT,
            "body": {"messages": [{"role": "user", "content": f"Write a one-line tip about batch jobs, #{i + 1}."}]},
        }).encode() + b"\n"
        for i in range(lines)
    )  # fmt: skip


def _upload(client: Any, data: bytes) -> str:
    if len(data) <= PART_BYTES:
        return str(client.files.create(file=("requests.jsonl", data), purpose="batch").id)
    done = client.uploads.upload_file_chunked(
        file=data, filename="requests.jsonl", bytes=len(data), mime_type="application/jsonl",
        purpose="batch", part_size=PART_BYTES,
    )  # fmt: skip
    return str(done.file.id)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class CpuProfile:
    """Where the process's CPU goes, across all threads: a sampler of stacks weighted by each thread's CPU clock.

    cProfile follows one thread; the local cloud runs in dozens (moto's request threads, executions, Map
    children, uvicorn). Every `interval` seconds each thread's stack is taken with the CPU time that thread
    used since the last sample, so a thread blocked on a lock or a socket adds nothing.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.own: dict[str, float] = {}
        self.inclusive: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-profile", daemon=True)

    def __enter__(self) -> CpuProfile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        used: dict[int, float] = {}
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                try:
                    now = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:  # the thread ended meanwhile
                    continue
                spent, used[ident] = now - used.get(ident, now), now
                if spent <= 0:
                    continue
                seen: set[str] = set()
                place: Any = frame
                while place is not None:
                    code = place.f_code
                    name = f"{Path(code.co_filename).name}:{code.co_firstlineno}:{code.co_name}"
                    if place is frame:
                        self.own[name] = self.own.get(name, 0.0) + spent
                    if name not in seen:
                        seen.add(name)
                        self.inclusive[name] = self.inclusive.get(name, 0.0) + spent
                    place = place.f_back

    def top(self, count: int = 150) -> dict[str, list[tuple[str, float]]]:
        """The functions that used the most CPU seconds: by their own frames, and with what they called."""

        def best(table: dict[str, float]) -> list[tuple[str, float]]:
            return [(name, round(seconds, 3)) for name, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:count]]

        return {"own": best(self.own), "inclusive": best(self.inclusive)}


# Enough frames to reach the product's or the local cloud's own code from the library line that allocated.
FRAMES_TRACED = 8
OUR_CODE = tuple(str(ROOT / part) for part in ("layers", "functions", "localcloud"))


def _site(traceback: tracemalloc.Traceback) -> str:
    """Where an allocation was made, and from which line of ours (when a library made it)."""

    def name(frame: tracemalloc.Frame) -> str:
        return f"{Path(frame.filename).name}:{frame.lineno}"

    innermost = traceback[-1]  # tracemalloc keeps the most recent frame last
    ours = next((frame for frame in reversed(traceback) if frame.filename.startswith(OUR_CODE)), None)
    if ours is None or ours == innermost:
        return name(innermost)
    return f"{name(innermost)} from {name(ours)}"


class MemoryTrace:
    """Python's own allocations (tracemalloc) from the local cloud's start on: each phase's traced peak, and
    the allocation sites that held the most when the traced memory was highest in it.

    RSS can only say a phase raised the high-water mark; this says how much of that was live Python
    objects and whose. Sampled (every `interval` seconds, a snapshot when the traced memory has grown by
    `step` bytes past the phase's highest), so a site's figure is at or near the phase's peak.
    """

    def __init__(self, interval: float = 0.25, step: int = 2 * 2**20, sites: int = 4) -> None:
        self.interval, self.step, self.sites = interval, step, sites
        self.phases: dict[str, dict[str, Any]] = {}
        self._best: tuple[int, Any] = (0, None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-trace", daemon=True)

    def start(self) -> None:
        tracemalloc.start(FRAMES_TRACED)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            current = tracemalloc.get_traced_memory()[0]
            with self._lock:
                if current >= self._best[0] + self.step:
                    self._best = (current, tracemalloc.take_snapshot())

    def phase(self, name: str) -> None:
        """Close the phase `name`: its traced peak and its top sites; the next phase starts afresh."""
        peak = tracemalloc.get_traced_memory()[1]
        with self._lock:
            _, snapshot = self._best
            self._best = (0, None)
            tracemalloc.reset_peak()
        sites: dict[str, int] = {}
        if snapshot is not None:
            traces = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            for stat in traces.statistics("traceback"):
                site = _site(stat.traceback)
                sites[site] = sites.get(site, 0) + stat.size
        top = sorted(sites.items(), key=lambda kv: -kv[1])[: self.sites]
        self.phases[name] = {"traced_peak_bytes": peak, "sites": top}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        tracemalloc.stop()


def measure_batch(
    lines: int,
    *,
    parameters: dict[str, str] | None = None,
    poll_interval: float = 0.5,
    timeout: float = 1800.0,
    profile: bool = False,
    trace_memory: bool = False,
) -> dict[str, Any]:
    """Run one batch of `lines` lines on a local cloud started in this process; what it cost.

    Answers {"lines", "cpu_seconds", "cpu_ms_per_line", "wall_seconds", "peak_rss_bytes", "polls",
    "status", "api_calls": {caller: {service: {operation: n}}}, "state_transitions": {state: n},
    "lambda": {function: {"invocations", "billed_ms", "memory_mb"}}}. One LocalCloud per process.
    With `trace_memory`, also "memory_trace" (MemoryTrace.phases); tracing slows the run, so its CPU
    and RSS figures are not the benchmark's.
    """
    # Before the local cloud's threads import handlers (see localcloud.preload).
    from localcloud.preload import preload_sdk

    preload_sdk()
    from openai import OpenAI

    from localcloud import LocalCloud, metering

    data = generated(lines)
    # The functions' JSON logs and EMF metrics go to a sink: on AWS they are CloudWatch's work, not Lambda's.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with contextlib.redirect_stderr(io.StringIO()), LocalCloud(port=0, parameters=parameters) as cloud:
        from batchline.observability import logger

        logger.setLevel("WARNING")
        client = OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)
        metering.reset()  # the most invocations at once are the window's own
        before = metering.snapshot()
        profiler = CpuProfile() if profile else None
        if profiler is not None:
            profiler.__enter__()
        tracer = MemoryTrace() if trace_memory else None
        if tracer is not None:
            tracer.start()
        cpu, wall = time.process_time(), time.perf_counter()
        # The high-water mark as each phase ends: which phase set the peak, for a missed target's detail.
        peaks = {"started": _peak_rss_bytes()}
        input_file_id = _upload(client, data)
        peaks["uploaded"] = _peak_rss_bytes()
        if tracer is not None:
            tracer.phase("uploaded")
        batch = client.batches.create(
            input_file_id=input_file_id, endpoint=ENDPOINT, completion_window="24h", extra_body={"job_id": cloud.job_id}
        )
        polls = 0
        deadline = time.monotonic() + timeout
        while batch.status not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch.id} still {batch.status} after {timeout:.0f} s")
            time.sleep(poll_interval)
            batch = client.batches.retrieve(batch.id)
            polls += 1
        peaks["ran"] = _peak_rss_bytes()
        if tracer is not None:
            tracer.phase("ran")
        # Streamed, as a client of a large output would: the run's memory is the cloud's, not a copy of its output.
        answered: Counter[str] = Counter()
        output_bytes = 0
        if batch.output_file_id:
            with client.files.with_streaming_response.content(batch.output_file_id) as response:
                for line in response.iter_lines():
                    if line:
                        output_bytes += len(line) + 1
                        answered[json.loads(line)["custom_id"]] += 1
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        peaks["downloaded"] = _peak_rss_bytes()
        if tracer is not None:
            tracer.phase("downloaded")
            tracer.stop()
        if profiler is not None:
            profiler.__exit__()
        counted = metering.difference(metering.snapshot(), before)
    # A batch that "finished" without answering every line exactly once measured nothing.
    expected = Counter(f"request-{i + 1}" for i in range(lines))
    if batch.status != "completed" or answered != expected:
        raise RuntimeError(f"batch ended {batch.status} with {sum(answered.values())} of {lines} lines answered")
    return {
        "lines": lines,
        "status": batch.status,
        "cpu_seconds": cpu,
        "cpu_ms_per_line": 1000 * cpu / lines,
        "wall_seconds": wall,
        "peak_rss_bytes": _peak_rss_bytes(),
        "peak_rss_bytes_by_phase": peaks,
        "input_bytes": len(data),
        "output_bytes": output_bytes,
        "polls": polls,
        **counted,
        **({"profile": profiler.top()} if profiler is not None else {}),
        **({"memory_trace": tracer.phases} if tracer is not None else {}),
    }


def _in_subprocess(lines: int, *extra: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        log = Path(folder) / "log.txt"
        with log.open("w") as out:
            done = subprocess.run(  # noqa: S603  # this script, with our own interpreter
                [sys.executable, __file__, "--measure", str(lines), "--result", str(result), *extra],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{lines} lines failed ({done.returncode}):\n{log.read_text()[-4000:]}")
        answer: dict[str, Any] = json.loads(result.read_text())
        return answer


def calls_total(run: dict[str, Any], callers: tuple[str, ...] | None = None) -> int:
    """AWS API calls of a run (only those of `callers`, when given)."""
    return sum(
        count
        for caller, services in run["api_calls"].items()
        if callers is None or caller in callers
        for operations in services.values()
        for count in operations.values()
    )


def summary(run: dict[str, Any]) -> str:
    """One line of a run's figures and counts."""
    invocations = {name: usage["invocations"] for name, usage in run["lambda"].items()}
    return (
        f"{run['lines']} lines: {run['cpu_seconds']:.1f} s CPU ({run['cpu_ms_per_line']:.2f} ms/line), "
        f"{run['wall_seconds']:.1f} s wall, peak RSS {run['peak_rss_bytes'] / 2**20:.0f} MiB, "
        f"{calls_total(run)} AWS calls, {sum(run['state_transitions'].values())} state transitions, "
        f"invocations {invocations}, most at once {run.get('most_at_once', {})}"
    )


def _phases(run: dict[str, Any]) -> str:
    """Peak RSS as each phase of a run ended (upload, the batch's run, the download): where the peak was set."""
    peaks = ", ".join(f"{phase} {size / 2**20:.0f}" for phase, size in run["peak_rss_bytes_by_phase"].items())
    return f"peak RSS MiB after each phase at {run['lines']:,} lines: {peaks}"


def _traced(run: dict[str, Any]) -> str:
    """A traced run's Python peak in each phase and the sites that held the most at it."""

    def mib(size: int) -> str:
        return f"{size / 2**20:.1f}"

    phases = "; ".join(
        f"{phase} {mib(found['traced_peak_bytes'])}"
        + (f" ({', '.join(f'{site} {mib(size)}' for site, size in found['sites'])})" if found["sites"] else "")
        for phase, found in run["memory_trace"].items()
    )
    return f"traced Python peak MiB (over the started cloud) by phase at {run['lines']:,} lines: {phases}"


def rows(
    small: dict[str, Any], large: dict[str, Any], traced: tuple[dict[str, Any], dict[str, Any]] | None = None
) -> list[Row]:
    """The two rows of docs/benchmarks.md: CPU per line and peak RSS, large over small."""
    cpu = large["cpu_ms_per_line"] / small["cpu_ms_per_line"]
    rss = large["peak_rss_bytes"] / small["peak_rss_bytes"]
    sizes = f"{large['lines']:,} / {small['lines']:,} lines"
    counts = f"small: {summary(small)}; large: {summary(large)}"
    cpu_detail = counts if cpu <= CPU_TARGET else f"missed by {cpu - CPU_TARGET:.2f}x; {counts}"
    # The traced runs (made when the target is missed) say how much of the growth is live Python objects.
    traces = "".join(f"; {_traced(run)}" for run in traced or ())
    rss_detail = (
        counts
        if rss <= RSS_TARGET
        else f"missed by {rss - RSS_TARGET:.3f}x; {_phases(small)}; {_phases(large)}{traces}; {counts}"
    )
    return [
        Row(
            goal=f"local e2e CPU per line, {sizes}",
            value=round(cpu, 3),
            unit="x",
            target=f"≤ {CPU_TARGET}x",
            met=cpu <= CPU_TARGET,
            baseline=f"{small['cpu_ms_per_line']:.3f} ms/line at {small['lines']:,} lines",
            detail=cpu_detail,
        ),
        Row(
            goal=f"local e2e peak RSS, {sizes}",
            value=round(rss, 3),
            unit="x",
            target=f"≤ {RSS_TARGET}x (flat)",
            met=rss <= RSS_TARGET,
            baseline=f"{small['peak_rss_bytes'] / 2**20:.0f} MiB at {small['lines']:,} lines",
            detail=rss_detail,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=5_000, help="lines of the baseline batch")
    parser.add_argument("--large", type=int, default=50_000, help="lines of the measured batch")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="sample where the CPU goes (in the results)")
    parser.add_argument(
        "--trace-memory", action="store_true", help="with --measure: trace Python's allocations by phase (slower)"
    )
    json_argument(parser)
    args = parser.parse_args()
    if args.measure:
        answer = measure_batch(args.measure, profile=args.profile, trace_memory=args.trace_memory)
        args.result.write_text(json.dumps(answer))
        return
    small = _in_subprocess(args.small)
    print(summary(small), flush=True)
    large = _in_subprocess(args.large)
    print(summary(large), flush=True)
    print(f"  {_phases(small)}\n  {_phases(large)}")
    for run in (small, large):
        print(f"  {run['lines']} lines, AWS calls by caller: "
              f"{ {caller: calls_total(run, (caller,)) for caller in run['api_calls']} }")  # fmt: skip
        print(f"  state transitions: {run['state_transitions']}")
        print(f"  lambda: {run['lambda']}")
    traced = None
    if large["peak_rss_bytes"] / small["peak_rss_bytes"] > RSS_TARGET:
        # Missed: run both sizes again under tracemalloc, for the measured cause in the row's detail.
        traced = (_in_subprocess(args.small, "--trace-memory"), _in_subprocess(args.large, "--trace-memory"))
        for run in traced:
            print(f"  {_traced(run)}")
    write_rows(args.json, rows(small, large, traced))


if __name__ == "__main__":
    main()
