"""`python -m localcloud.demo`: run a batch on the local cloud with the openai SDK, and show it happen.

Starts the local cloud in this process, uploads a batch file (the sample in events/, or a generated
one with --lines), creates a batch for the demo job (mock provider), prints its progress, then the
first lines of its output file and the batch object, and stops.
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

from openai import OpenAI

from localcloud.cloud import ROOT, LocalCloud
from localcloud.preload import preload_sdk

# Before the local cloud's threads start importing handlers (see localcloud.preload).
preload_sdk()

SAMPLE = ROOT / "events" / "batch_requests.jsonl"
TERMINAL = ("completed", "failed", "cancelled", "expired")


def generated(lines: int) -> bytes:
    """A chat batch of `lines` requests."""
    return b"".join(
        json.dumps({
            "custom_id": f"request-{i + 1}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": f"Write a one-line tip about batch jobs, #{i + 1}."}]},
        }).encode() + b"\n"
        for i in range(lines)
    )  # fmt: skip


def run(cloud: LocalCloud, data: bytes, out: io.TextIOBase | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """Submit `data` as a batch with the SDK and follow it to its end; the final batch object."""
    say = out or sys.stdout
    client = OpenAI(base_url=cloud.base_url, api_key=cloud.api_key)
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    print(f"Uploaded {uploaded.filename}: {uploaded.id}, {uploaded.bytes} bytes", file=say)
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"job_id": cloud.job_id},
    )
    print(f"Created {batch.id} for job {cloud.job_id}", file=say)
    shown = None
    deadline = time.monotonic() + timeout
    while batch.status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
        counts = batch.request_counts
        progress = (batch.status, counts.completed if counts else 0, counts.failed if counts else 0)
        if progress != shown:
            total = counts.total if counts else 0
            print(f"  {batch.status:<12} {progress[1] + progress[2]:>6}/{total} done, {progress[2]} failed", file=say)
            shown = progress
    if batch.output_file_id:
        print("First output lines:", file=say)
        for line in client.files.content(batch.output_file_id).text.splitlines()[:3]:
            print(f"  {line[:200]}", file=say)
    final = batch.model_dump(mode="json")
    print("Batch:", file=say)
    print(json.dumps(final, indent=2), file=say)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.demo", description=__doc__)
    parser.add_argument("--lines", type=int, default=0, help="generate this many requests instead of the sample")
    parser.add_argument("--file", type=Path, default=SAMPLE, help="the batch file (default: the sample in events/)")
    args = parser.parse_args(argv)
    data = generated(args.lines) if args.lines else args.file.read_bytes()
    print("Starting the local cloud...", flush=True)
    # The functions' JSON logs and metrics would drown the story; the demo shows what a client sees.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with contextlib.redirect_stderr(io.StringIO()), LocalCloud(port=0) as cloud:
        from batchline.observability import logger

        logger.setLevel("WARNING")
        final = run(cloud, data)
    return 0 if final["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
