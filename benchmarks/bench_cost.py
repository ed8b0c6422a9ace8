"""AWS calls per input line and what orchestration costs per million lines, from a measured local batch.

Run: .venv/bin/python benchmarks/bench_cost.py [--lines 10000] [--latency 0.2] [--json PATH]

One 10,000-line batch runs through the in-process local cloud twice, each in a fresh interpreter
(`bench_e2e.measure_batch`, which counts what the run did in AWS's billing units): once as deployed
(chunks sized to the job's concurrency) and once with `LinesPerChunk=100`, the fixed 100-line chunks
the stack had before, as the baseline of the same run. From the counts, the cost model prices a
million lines at arm64 list prices (us-east-1); every figure per line is scaled from the measured run,
except the worker's billed time, which on the local cloud is the mock provider's: it is modelled as
an upstream of `--latency` seconds answering the worker's requests in flight (at the template's
MemorySize, while the worker's CPU share keeps up with the answers), the arithmetic shown, and
what the worker does by the clock in that time (a checkpoint every CheckpointSeconds, a status check and
lease renewal every status_check_interval), which a fast local run hardly shows.

Not counted, as they are the client's and not the batch's: the api function's calls (uploading,
polling: a client that polls every second costs more than one that waits for the event) and the
local cloud's own set-up ("unattributed").
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "layers" / "core"), str(ROOT)]

from report import Row, json_argument, write_rows

CALLS_TARGET = 0.01
COST_TARGET = 0.10
MILLION = 1_000_000

# arm64 list prices, us-east-1 (USD).
LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / MILLION
TRANSITION = 0.025 / 1000  # Step Functions Standard, per state transition
DYNAMODB_WRITE_UNIT = 0.625 / MILLION  # on-demand
DYNAMODB_READ_UNIT = 0.125 / MILLION
S3_PUT_CLASS = 0.005 / 1000  # PUT, COPY, POST, LIST, multipart parts
S3_GET_CLASS = 0.0004 / 1000  # GET, HEAD and the rest
SQS_REQUEST = 0.40 / MILLION
EVENTBRIDGE_EVENT = 1.00 / MILLION

# Capacity units per call, for items this small (a batch or segment item is well under 1 KB written, 4 KB read).
DYNAMODB_UNITS = {
    "PutItem": ("write", 1),
    "UpdateItem": ("write", 1),
    "DeleteItem": ("write", 1),
    "TransactWriteItems": ("write", 4),  # two items (segment, batch), at twice the units of a plain write
    "GetItem": ("read", 1),  # strongly consistent; the worker's status poll is eventually consistent: 0.5
    "BatchGetItem": ("read", 3),  # segment, batch and job
    "Query": ("read", 1),
    "TransactGetItems": ("read", 2),
}
# Lambda's CPU: one vCPU at 1,769 MB, in proportion below it; and the least memory a function may have.
MB_PER_VCPU = 1769
LAMBDA_LEAST_MB = 128
S3_PUT_OPERATIONS = {"PutObject", "CopyObject", "UploadPart", "UploadPartCopy", "CreateMultipartUpload",
                     "CompleteMultipartUpload", "ListObjectsV2", "ListObjects"}  # fmt: skip


def _measure(lines: int, parameters: dict[str, str]) -> dict[str, Any]:
    """One batch in a fresh interpreter (its memory and its counters its own)."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        done = subprocess.run(  # noqa: S603  # this script, with our own interpreter
            [sys.executable, __file__, "--measure", str(lines), "--parameters", json.dumps(parameters),
             "--result", str(result)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{lines} lines with {parameters} failed:\n{(done.stderr or done.stdout)[-3000:]}")
        answer: dict[str, Any] = json.loads(result.read_text())
        return answer


def _counted_calls(run: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The batch's own calls, by service and operation: every caller but the api function and set-up."""
    calls: dict[str, dict[str, int]] = {}
    for caller, services in run["api_calls"].items():
        if caller == "unattributed" or caller.lower().startswith("api"):
            continue
        for service, operations in services.items():
            for operation, count in operations.items():
                calls.setdefault(service, {}).setdefault(operation, 0)
                calls[service][operation] += count
    return calls


def _total(calls: dict[str, dict[str, int]]) -> int:
    return sum(n for operations in calls.values() for n in operations.values())


def _worker_settings() -> tuple[int, int, float, float]:
    """The worker's requests in flight, memory, seconds between checkpoints and between status checks, as
    the template deploys it."""
    from batchline.config import WorkerSettings
    from localcloud.template import load_template

    template = load_template(ROOT / "template.yaml")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    memory = int(worker.get("MemorySize", template["Globals"]["Function"].get("MemorySize", 128)))
    checkpoint = float(template["Parameters"]["CheckpointSeconds"]["Default"])
    status_check = float(WorkerSettings.model_fields["status_check_interval"].default)
    return int(variables["REQUESTS_PER_WORKER"]), memory, checkpoint, status_check


# What a worker does by the clock, not by the line, so a fast local run does not show it: per checkpoint a
# part object put, its segment kept (PutItem) and committed (TransactWriteItems, 4 WRU), and about one ranged
# GET (ranges are sized to a checkpoint's sending); per status check one eventually consistent BatchGetItem of
# the batch, its job's budget's summary and its batch's share (3 items under 4 KB: 1.5 RRU), and the lease's
# renewal, which a steady worker writes (1 WRU) only once half its lease has gone (LEASE_WRITES_PER_CHECK).
CHECKPOINT_CALLS = {"s3_put": 1, "s3_get": 1, "write_units": 1 + 4, "read_units": 0}
STATUS_CHECK_CALLS = {"s3_put": 0, "s3_get": 0, "write_units": 1, "read_units": 1.5}


def _lease_writes_per_check(status_check: float) -> float:
    from batchline.config import WorkerSettings

    return min(1.0, status_check / (float(WorkerSettings.model_fields["budget_lease_seconds"].default) / 2))


def _clock_cost(totals: dict[str, float]) -> float:
    """What the calls a worker makes by the clock cost."""
    return (totals["write_units"] * DYNAMODB_WRITE_UNIT + totals["read_units"] * DYNAMODB_READ_UNIT
            + totals["s3_put"] * S3_PUT_CLASS + totals["s3_get"] * S3_GET_CLASS)  # fmt: skip


def _by_the_clock(worker_seconds: float, checkpoint: float, status_check: float) -> tuple[dict[str, float], str]:
    """The calls a million lines' worker time makes by the clock, and how they were counted."""
    checkpoints, checks = worker_seconds / checkpoint, worker_seconds / status_check
    per_check = {**STATUS_CHECK_CALLS, "write_units": _lease_writes_per_check(status_check)}
    totals = {name: checkpoints * CHECKPOINT_CALLS[name] + checks * per_check[name] for name in CHECKPOINT_CALLS}
    shown = (
        f"by the clock: {worker_seconds:,.0f} worker-s / {checkpoint:g} s = {checkpoints:,.0f} checkpoints "
        f"(1 PUT, 1 GET, 5 WRU each) and / {status_check:g} s = {checks:,.0f} status checks "
        f"({per_check['read_units']:g} RRU, {per_check['write_units']:.2f} WRU each)"
    )
    return totals, shown


@dataclass(frozen=True)
class Priced:
    """A million lines' orchestration cost, the arithmetic (a line per service), and the parts it is made of."""

    total: float
    shown: list[str]
    worker: float  # the worker's billed memory while its lines are in flight
    worker_mb: int
    in_flight: int
    worker_seconds: float
    clocked: float  # what the worker does by the clock in that time: checkpoints and status checks
    checkpoints: float
    status_checks: float
    step_functions: float


def cost_per_million(run: dict[str, Any], latency: float, job_concurrency: int | None = None) -> Priced:
    """Orchestration cost of a million lines like this run's, the arithmetic, and its parts."""
    scale = MILLION / run["lines"]
    calls = _counted_calls(run)
    parts: dict[str, float] = {}
    shown: list[str] = []

    in_flight, worker_mb, checkpoint, status_check = _worker_settings()
    if job_concurrency is not None:  # a job that allows fewer than a worker could keep in flight
        in_flight = min(in_flight, job_concurrency)
    worker_seconds = MILLION * latency / in_flight
    clocked, clocked_shown = _by_the_clock(worker_seconds, checkpoint, status_check)
    worker_cost = lambda_cost = worker_seconds * worker_mb / 1024 * LAMBDA_GB_SECOND
    # The worker's time is the upstream's while its CPU share keeps up with the answers; held back by its CPU,
    # a line is billed its CPU time x 1,769 MB instead, whatever the memory (bench_worker's MemorySize row).
    keeps_up_ms = worker_mb / MB_PER_VCPU / (in_flight / latency) * 1000
    shown.append(
        f"worker: 1M lines x {latency * 1000:.0f} ms / {in_flight} in flight = {worker_seconds:,.0f} s x "
        f"{worker_mb / 1024:g} GB x ${LAMBDA_GB_SECOND} = ${lambda_cost:.4f}, while its CPU keeps up: at "
        f"{worker_mb} MB Lambda gives {worker_mb / MB_PER_VCPU:.3f} vCPU, {in_flight / latency:.0f} lines/s at up to "
        f"{keeps_up_ms:.3f} ms of CPU per line (bench_worker measures it); beyond, each line is billed its CPU "
        f"time x {MB_PER_VCPU:,} MB at any memory size"
    )
    invocations = 0.0
    for function, usage in run["lambda"].items():
        invocations += usage["invocations"] * scale if not function.lower().startswith("api") else 0
        if function.lower().startswith(("api", "worker")):
            continue
        gb_seconds = usage["billed_ms"] / 1000 * usage["memory_mb"] / 1024 * scale
        lambda_cost += gb_seconds * LAMBDA_GB_SECOND
        shown.append(f"{function}: {gb_seconds:,.1f} GB-s (measured, scaled) = ${gb_seconds * LAMBDA_GB_SECOND:.4f}")
    parts["Lambda"] = lambda_cost + invocations * LAMBDA_REQUEST
    shown.append(f"Lambda requests: {invocations:,.0f} x ${LAMBDA_REQUEST:.7f} = ${invocations * LAMBDA_REQUEST:.4f}")

    transitions = sum(run["state_transitions"].values()) * scale
    parts["Step Functions"] = transitions * TRANSITION
    shown.append(f"Step Functions: {transitions:,.0f} transitions x ${TRANSITION} = ${parts['Step Functions']:.4f}")

    reads, writes = clocked["read_units"], clocked["write_units"]
    shown.append(clocked_shown)
    for operation, count in calls.get("dynamodb", {}).items():
        kind, units = DYNAMODB_UNITS.get(operation, ("read", 1))
        if kind == "write":
            writes += count * units * scale
        else:
            reads += count * units * scale
    parts["DynamoDB"] = writes * DYNAMODB_WRITE_UNIT + reads * DYNAMODB_READ_UNIT
    shown.append(f"DynamoDB: {writes:,.0f} WRU + {reads:,.0f} RRU = ${parts['DynamoDB']:.4f}")

    puts = sum(n for op, n in calls.get("s3", {}).items() if op in S3_PUT_OPERATIONS) * scale + clocked["s3_put"]
    gets = sum(n for op, n in calls.get("s3", {}).items() if op not in S3_PUT_OPERATIONS) * scale + clocked["s3_get"]
    parts["S3"] = puts * S3_PUT_CLASS + gets * S3_GET_CLASS
    shown.append(f"S3: {puts:,.0f} PUT-class + {gets:,.0f} GET-class = ${parts['S3']:.4f}")

    sqs = sum(calls.get("sqs", {}).values()) * scale
    events = sum(calls.get("events", {}).values()) * scale
    parts["SQS, EventBridge"] = sqs * SQS_REQUEST + events * EVENTBRIDGE_EVENT
    shown.append(f"SQS {sqs:,.0f} + EventBridge {events:,.0f} requests = ${parts['SQS, EventBridge']:.4f}")
    total = sum(parts.values())
    shares = ", ".join(f"{name} {100 * cost / total:.0f}%" for name, cost in sorted(parts.items(), key=lambda p: -p[1]))
    shown.append(f"total ${total:.4f} per 1M lines ({shares})")
    return Priced(total, shown, worker_cost, worker_mb, in_flight, worker_seconds, _clock_cost(clocked),
                  worker_seconds / checkpoint, worker_seconds / status_check, parts["Step Functions"])  # fmt: skip


# The slow case: a 2 s upstream on a job of the default sla.max_concurrency, with small answers.
SLOW_LATENCY = 2.0


def _cost_row(run: dict[str, Any], baseline: dict[str, Any], latency: float, concurrency: int | None = None) -> Row:
    """Orchestration cost per 1M lines at `latency`, on a job of `concurrency` in flight (None: the worker's)."""
    priced = cost_per_million(run, latency, concurrency)
    cost = priced.total
    base_cost = cost_per_million(baseline, latency, concurrency).total
    detail = "; ".join(priced.shown)
    if cost > COST_TARGET:
        detail += "; " + _missed(priced, latency, concurrency)
    job = "" if concurrency is None else f", default job ({concurrency} in flight)"
    upstream = f"{latency * 1000:.0f} ms" if latency < 1 else f"{latency:g} s"
    return Row(
        goal=f"orchestration cost per 1M lines at a {upstream} upstream{job}",
        value=round(cost, 4),
        unit="$",
        target=f"≤ ${COST_TARGET:.2f}",
        met=cost <= COST_TARGET,
        baseline=f"${base_cost:.4f} with 100-line chunks (ratio {cost / base_cost:.3f}x)",
        detail=detail,
    )


def _missed(priced: Priced, latency: float, concurrency: int | None) -> str:
    """Why the cost is over the target, from its parts."""
    held = latency / priced.in_flight * 1000
    rest = priced.total - priced.worker - priced.clocked - priced.step_functions
    least = priced.worker * LAMBDA_LEAST_MB / priced.worker_mb
    floor = priced.total - priced.worker + least
    allowed = "" if concurrency is None else ", all the job allows"
    text = (
        f"missed by ${priced.total - COST_TARGET:.4f}: a worker is billed for its {priced.worker_mb} MB while its "
        f"lines wait on the upstream, and it keeps {priced.in_flight} in flight{allowed}, so each line holds "
        f"{held:.0f} ms of a worker: ${priced.worker:.4f}; in those {priced.worker_seconds:,.0f} s it checkpoints "
        f"({priced.checkpoints:,.0f}) and checks its batch's status ({priced.status_checks:,.0f}) by the clock: "
        f"${priced.clocked:.4f} of DynamoDB and S3; Step Functions ${priced.step_functions:.4f}, the rest "
        f"${rest:.4f}"
    )
    if floor > COST_TARGET:
        text += (
            f"; no memory size meets the target here: at {LAMBDA_LEAST_MB} MB, Lambda's least, the worker alone is "
            f"${least:.4f} and the whole ${floor:.4f}; more in flight per worker divides the worker's time and what "
            "it does by the clock"
        )
    else:
        text += f"; at {LAMBDA_LEAST_MB} MB, Lambda's least, it would be ${floor:.4f}"
    return text


def rows(run: dict[str, Any], baseline: dict[str, Any], latency: float) -> list[Row]:
    from batchline.models.jobs import Sla

    calls = _counted_calls(run)
    per_line = _total(calls) / run["lines"]
    base_per_line = _total(_counted_calls(baseline)) / baseline["lines"]
    by_operation = ", ".join(
        f"{service}.{op} {n}"
        for service, ops in sorted(calls.items())
        for op, n in sorted(ops.items(), key=lambda x: -x[1])
    )
    chunks = run["state_transitions"].get("Work", 0)
    return [
        Row(
            goal=f"AWS calls per input line ({run['lines']:,}-line local batch)",
            value=round(per_line, 5),
            unit="calls/line",
            target=f"≤ {CALLS_TARGET}",
            met=per_line <= CALLS_TARGET,
            baseline=f"{base_per_line:.4f} calls/line with 100-line chunks (ratio {per_line / base_per_line:.3f}x)",
            detail=f"{_total(calls)} calls: {by_operation}; worker invocations {chunks}",
        ),
        _cost_row(run, baseline, latency),
        _cost_row(run, baseline, SLOW_LATENCY, int(Sla.model_fields["max_concurrency"].default)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.2, help="the modelled upstream's seconds per answer")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--parameters", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    json_argument(parser)
    args = parser.parse_args()
    if args.measure:
        from bench_e2e import measure_batch

        result = measure_batch(args.measure, parameters=json.loads(args.parameters))
        result.pop("profile", None)
        args.result.write_text(json.dumps(result))
        return
    run = _measure(args.lines, {})
    baseline = _measure(args.lines, {"LinesPerChunk": "100"})
    for name, measured in (("as deployed", run), ("100-line chunks", baseline)):
        invocations = math.fsum(u["invocations"] for u in measured["lambda"].values())
        transitions = sum(measured["state_transitions"].values())
        calls = _total(_counted_calls(measured))
        print(f"{name}: {calls} calls, {transitions} transitions, {invocations:.0f} invocations")
    write_rows(args.json, rows(run, baseline, args.latency))


if __name__ == "__main__":
    main()
