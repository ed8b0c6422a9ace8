"""Worker throughput: one chunk against a loopback OpenAI-compatible server that takes 50 ms per answer.

Runs the real ChunkRun (moto for DynamoDB and S3, the real openai provider over HTTP) with 1 request in
flight (the baseline, what a line-at-a-time loop does) and with the worker's default 25, in the same run,
and prints lines per second, the ratio, and the AWS calls each line cost.

    .venv/bin/python benchmarks/bench_worker.py [--lines 200] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT)]
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true", POWERTOOLS_TRACE_DISABLED="true")  # fmt: skip

import boto3
from moto import mock_aws

from batchline import ids
from batchline.files import file_key
from batchline.models import BatchRecord, JobRecord, OpenAIProvider, Sla
from batchline.planning import plan_batch
from batchline.providers import ProviderSettings, make_provider
from batchline.store import Store
from batchline.worker import ChunkRun
from localcloud.template import load_template
from tests.fakes.openai_server import FakeOpenAI


def setup(fake: FakeOpenAI, lines: int, latency: float) -> tuple[Store, str, object]:
    props = load_template(ROOT / "template.yaml")["Resources"]["Table"]["Properties"]
    boto3.client("dynamodb").create_table(TableName="bench", **{k: props[k] for k in (
        "AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes")})  # fmt: skip
    boto3.client("s3").create_bucket(Bucket="bench-files")
    store = Store("bench", "bench-files")
    job = JobRecord(id="job-bench", tenant_id="tenant_bench", model="m", created_at=0,
              provider=OpenAIProvider(type="openai", base_url=fake.base_url), sla=Sla(max_concurrency=100))  # fmt: skip
    store.jobs.put(job)
    data = b"".join(
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": f"q{i} [[fault:slow={latency}]]"}]}}).encode()
        + b"\n" for i in range(lines)
    )  # fmt: skip
    store.objects.put_bytes(file_key("tenant_bench", "file-bench"), data)
    chunk = plan_batch(__import__("io").BytesIO(data), endpoint="/v1/chat/completions", model=None,
                       lines_per_chunk=lines).chunks[0]  # fmt: skip
    return store, job.id, chunk


def measure(store: Store, job_id: str, chunk: object, in_flight: int) -> tuple[float, Counter[str]]:
    batch_id = ids.batch_id()
    store.table.resource.put_item(Item={"pk": "file-bench", "sk": "file", "tenant_id": "tenant_bench"})
    batch = BatchRecord(id=batch_id, endpoint="/v1/chat/completions", input_file_id="file-bench",
                        completion_window="unlimited", status="in_progress", created_at=0, job_id=job_id,
                        model="m", price_1m_tokens=0, tenant_id="tenant_bench")  # fmt: skip
    store.batches.put(batch)
    calls: Counter[str] = Counter()
    for client in (store.table.resource.meta.client, store.objects.client):
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    # The fake upstream is on loopback: a private backend, which the stack must allow.
    upstream = ProviderSettings(request_timeout=10, allow_private_backends=True)
    run = ChunkRun(store, lambda job: make_provider(job, secret=str, settings=upstream),
                   requests_in_flight=in_flight, remaining_seconds=lambda: 900, reserve_seconds=20,
                   status_check_interval=2.0)  # fmt: skip
    started = time.perf_counter()
    progress = run.run(batch_id, chunk, 0)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert progress == {"cursor": chunk.line_count, "done": True}, progress  # type: ignore[attr-defined]
    # Every line answered by the upstream: a refused backend would "finish" without sending anything.
    assert store.batches.get_unscoped(batch_id).request_counts.completed == chunk.line_count
    for client in (store.table.resource.meta.client, store.objects.client):
        client.meta.events.unregister("before-call.*.*")
    return elapsed, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    with mock_aws(), FakeOpenAI() as fake:
        store, job_id, chunk = setup(fake, args.lines, args.latency)
        base, _ = measure(store, job_id, chunk, 1)
        fast, calls = measure(store, job_id, chunk, 25)
    print(f"{args.lines} lines, {args.latency * 1000:.0f} ms per upstream answer")
    print(f"  1 in flight (baseline): {base:6.2f} s  {args.lines / base:7.1f} lines/s")
    print(f" 25 in flight (worker):   {fast:6.2f} s  {args.lines / fast:7.1f} lines/s")
    print(f"  speed-up: {base / fast:.1f}x")
    total = sum(calls.values())
    print(f"  AWS calls for the chunk: {total} ({total / args.lines:.3f} per line): {dict(calls)}")


if __name__ == "__main__":
    main()
