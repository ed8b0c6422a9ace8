"""Benchmark the worker GB-seconds per line of batches sharing one job, against one batch alone.

Run: .venv/bin/python benchmarks/bench_sharing.py [--lines N] [--json PATH]

A Lambda worker is billed for its memory while it waits for the model, so a batch planned for a job's
whole concurrency that then gets a quarter of it (three other batches share the job) must not run all its
workers a quarter full. On the local cloud (the real template, state machine and handlers, in this
process), with the mock provider answering after MOCK_LATENCY_MS and jobs of 4 workers' worth of
concurrency (each worker keeps up to 100 in flight, the template's REQUESTS_PER_WORKER):

- alone: one batch of `lines` lines on its own job (4 chunks, 4 workers);
- shared: 4 such batches at once on one job: each batch's share is one worker's, so three of its four
  chunks' workers find no share, leave, and wait in Step Functions (the template's IdleWaitSeconds,
  scaled by WAIT_SCALE so the run takes seconds; on AWS a waiting chunk is invoked less often than here,
  which only makes this figure worse than AWS's).

Worker GB-seconds are the metered billed duration times the function's memory; the figure is shared per
line over alone per line, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from report import Row, json_argument, write_rows

URL = "/v1/chat/completions"
MOCK_LATENCY_MS = 1_000
WORKERS_PER_BATCH = 4
REQUESTS_PER_WORKER = 100
SHARING = 4
WAIT_SCALE = 1.0
TARGET = 1.25
TERMINAL = ("completed", "failed", "cancelled", "expired")


def _lines(batch: int, count: int) -> bytes:
    return b"".join(
        json.dumps({"custom_id": f"b{batch}-{i}", "method": "POST", "url": URL,
                    "body": {"model": "test-model", "messages": [{"role": "user", "content": f"line {i}"}]}}).encode()
        + b"\n"
        for i in range(count)
    )  # fmt: skip


def _run(cloud: Any, client: Any, batches: int, lines: int) -> dict[str, Any]:
    """`batches` batches of `lines` lines at once on a new job: the worker's metered use, and the outcome."""
    from localcloud import metering
    from tests.e2e.runs import create_job

    sla = {"completion_window": "24h", "max_concurrency": WORKERS_PER_BATCH * REQUESTS_PER_WORKER}
    job = create_job(cloud.base_url, cloud.admin_key, cloud.tenant_id,
                     provider={"type": "mock", "latency_ms": MOCK_LATENCY_MS}, sla=sla)  # fmt: skip
    files = [client.files.create(file=(f"b{i}.jsonl", _lines(i, lines)), purpose="batch").id for i in range(batches)]
    before = metering.snapshot()
    started = time.monotonic()
    ids = [
        client.batches.create(input_file_id=f, endpoint=URL, completion_window="24h", extra_body={"job_id": job}).id
        for f in files
    ]
    done: dict[str, Any] = {}
    while len(done) < len(ids):
        if time.monotonic() - started > 1800:
            raise TimeoutError(f"batches still running: {sorted(set(ids) - set(done))}")
        time.sleep(0.5)
        for batch_id in ids:
            if batch_id not in done:
                batch = client.batches.retrieve(batch_id)
                if batch.status in TERMINAL:
                    done[batch_id] = batch
    wall = time.monotonic() - started
    counted = metering.difference(metering.snapshot(), before)
    for batch in done.values():
        if batch.status != "completed" or batch.request_counts.completed != lines:
            raise RuntimeError(f"batch {batch.id} ended {batch.status} with {batch.request_counts}: {batch.errors}")
    worker = counted["lambda"]["WorkerFunction"]
    gb_seconds = worker["billed_ms"] / 1000 * worker["memory_mb"] / 1024
    return {
        "lines": batches * lines,
        "gb_seconds": gb_seconds,
        "per_line": gb_seconds / (batches * lines),
        "invocations": worker["invocations"],
        "waits": counted["state_transitions"].get("Wait for a share", 0),
        "wall_seconds": wall,
        "memory_mb": worker["memory_mb"],
    }


def measure(lines: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from localcloud.preload import preload_sdk

    preload_sdk()
    from openai import OpenAI

    from localcloud import LocalCloud

    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    # The mock's latency is fixed; what the workers would measure on top is this one-process emulator's
    # scheduling on a shared machine, not a backend's queueing: only a median over 5 s counts as rising
    # (as tests/e2e/test_backend_sharing.py has it), so the limit stays the job's and both runs compare.
    os.environ["BUDGET_LATENCY_FLOOR"] = "5.0"
    with contextlib.redirect_stderr(io.StringIO()), LocalCloud(port=0, wait_scale=WAIT_SCALE) as cloud:
        from batchline.observability import logger

        logger.setLevel("WARNING")
        client = OpenAI(base_url=cloud.base_url, api_key=cloud.api_key, max_retries=0)
        alone = _run(cloud, client, 1, lines)
        shared = _run(cloud, client, SHARING, lines)
    return alone, shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=4_000, help="lines per batch")
    json_argument(parser)
    args = parser.parse_args()
    alone, shared = measure(args.lines)
    ratio = shared["per_line"] / alone["per_line"]

    def told(run: dict[str, Any]) -> str:
        used = f"{run['gb_seconds']:.2f} GB-s ({run['memory_mb']} MB worker)"
        return (f"{run['lines']:,} lines, {used}, {run['invocations']} worker invocations, {run['waits']} waits, "
                f"{run['wall_seconds']:.0f} s")  # fmt: skip

    rows = [
        Row(
            goal=f"worker GB-seconds per line, {SHARING} batches sharing a job / one batch alone",
            value=round(ratio, 3),
            unit="x",
            target=f"≤ {TARGET}x",
            met=ratio <= TARGET,
            baseline=f"one batch alone: {alone['per_line'] * 1e6:.1f} GB-µs/line ({told(alone)})",
            detail=f"shared: {shared['per_line'] * 1e6:.1f} GB-µs/line ({told(shared)}); a job of "
            f"{WORKERS_PER_BATCH} workers' concurrency, each batch planned for all of it, the mock answering after "
            f"{MOCK_LATENCY_MS} ms; Step Functions waits scaled by {WAIT_SCALE}",
        )
    ]
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
