"""Benchmark a job budget with 1,000 holders: the read and write units its busiest partition takes a second.

Run: .venv/bin/python benchmarks/bench_budget.py [--holders N] [--json PATH]

DynamoDB serves at most 3,000 read and 1,000 write units a second per partition; the target is a third of
each. 1,000 worker invocations (40 batches of 25) hold leases on one job of 1,000, through the data layer
(batchline.data.budgets) against moto, on a simulated clock so that a second here is a second of the
holders' time, however long moto takes. The local cloud's capacity meter (localcloud.capacity) counts the
units DynamoDB would bill, per partition key per second. What happens, as on AWS:

- the holders join over 10 s (Lambda adds at most 1,000 concurrent executions per function each 10 s);
- every holder polls every 2 s (its batch's status, the job's summary, its batch's share) and renews;
- at 30 s one batch ends (its 25 holders release) and a new one joins;
- at 40 s the backend throttles every holder for one interval, and afterwards every holder's requests
  succeed with its grant in use, so the limit climbs back;
- at 60 s they all release.

The baseline is the same run's busiest second summed over every partition: what one partition would take
if the budget were one item collection, as it was.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true")  # fmt: skip

from report import Row, json_argument, write_rows

from batchline.budget import Claim, Report, Tuning
from batchline.data.batches import Batches
from batchline.data.budgets import Budgets, Holding, share_from_item, summary_from_item
from batchline.data.table import Table
from localcloud import capacity, moto_fixes
from localcloud.patching import installed
from localcloud.template import load_template

TABLE = "batchline-bench"
JOB = "job-bench"
CEILING = 1_000
BATCHES = 40
INTERVAL = 2.0
TUNING = Tuning(interval=INTERVAL, lease_seconds=30.0)
JOIN_SECONDS = 10.0
CHURN_AT = 30.0
THROTTLE_AT = 40.0
END_AT = 60.0
RCU_TARGET = 1_000
WCU_TARGET = 300
# The simulated clock (a list, so the meter and a debugging hook can read it as it moves).
_now = [0.0]


def _create_table() -> None:
    props = load_template(ROOT / "template.yaml")["Resources"]["Table"]["Properties"]
    kwargs = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode")}
    if "GlobalSecondaryIndexes" in props:
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    boto3.client("dynamodb").create_table(TableName=TABLE, **kwargs)


class Holder:
    def __init__(self, name: str, batch_id: str) -> None:
        self.holding = Holding(name)
        self.claim = Claim(batch_id, 1, False, None)
        self.grant = 0
        self.joined = False


def run(holders_count: int) -> dict[str, Any]:
    clock = _now
    clock[0] = 0.0
    rng = random.Random(7)
    # moto_fixes: a transaction journals the items it writes rather than copy the whole table (as the local
    # cloud runs it); at a thousand holders the copy is minutes and gigabytes.
    with mock_aws(), installed(moto_fixes):
        _create_table()
        table = Table(TABLE)
        budgets = Budgets(table, sleep=lambda _: None, random=rng.random)
        per_batch = max(1, holders_count // BATCHES)
        holders = [Holder(f"h{i:04d}", f"batch_{i // per_batch:02d}") for i in range(holders_count)]
        late = [Holder(f"late{i:02d}", "batch_new") for i in range(per_batch)]
        # (time, sequence, holder): each holder's next renewal; joins spread over JOIN_SECONDS.
        events: list[tuple[float, int, Holder]] = []
        for i, holder in enumerate(holders):
            heapq.heappush(events, (JOIN_SECONDS * i / len(holders), i, holder))
        for i, holder in enumerate(late):
            heapq.heappush(events, (CHURN_AT + INTERVAL * i / len(late), len(holders) + i, holder))
        leaving = {h for h in holders if h.claim.batch_id == "batch_00"}
        renewals = 0
        with capacity.metered(clock=lambda: clock[0]) as meter:
            while events:
                at, seq, holder = heapq.heappop(events)
                clock[0] = at
                if at >= END_AT or (holder in leaving and at >= CHURN_AT):
                    budgets.release(JOB, holder.holding)
                    continue
                report = None
                summary = share = None
                if holder.joined:
                    # The worker's poll: its batch's status, the job's summary, its batch's share, in one read.
                    _, found, mine = table.get_keys(
                        [Batches.key(holder.claim.batch_id), Budgets.key(JOB),
                         Budgets.share_key(JOB, holder.claim.batch_id)]
                    )  # fmt: skip
                    summary = summary_from_item(found) if found else None
                    share = share_from_item(mine) if mine else None
                    throttled = THROTTLE_AT <= at < THROTTLE_AT + INTERVAL
                    report = Report(
                        successes=0 if throttled else 10,
                        throttled=1 if throttled else 0,
                        saturated=not throttled and holder.grant > 0,
                        in_flight=holder.grant,
                    )
                holder.grant = budgets.renew(JOB, holder.holding, holder.claim, report, now=at, tuning=TUNING,
                                             ceiling=CEILING, summary=summary, share=share)  # fmt: skip
                holder.joined = True
                renewals += 1
                heapq.heappush(events, (at + INTERVAL, seq, holder))
            peaks = meter.peaks(TABLE)
            busiest = _busiest_second(meter)
            kept = budgets.get(JOB)
    assert kept is not None
    return {"peaks": peaks, "busiest": busiest, "renewals": renewals, "room": kept.room, "limit": kept.limit,
            "holders": holders_count + len(late)}  # fmt: skip


def _busiest_second(meter: capacity.Meter) -> dict[str, float]:
    """The most units any one second took over every partition together (the one-partition baseline)."""
    seconds: dict[str, dict[int, float]] = {"rcu": defaultdict(float), "wcu": defaultdict(float)}
    for (table, _partition, second), units in meter.per_second().items():
        if table != TABLE:
            continue
        for kind in ("rcu", "wcu"):
            seconds[kind][second] += units[kind]
    return {kind: max(values.values(), default=0.0) for kind, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=1_000)
    json_argument(parser)
    args = parser.parse_args()
    found = run(args.holders)
    rows = []
    for kind, target, name in (("rcu", RCU_TARGET, "read"), ("wcu", WCU_TARGET, "write")):
        peak = found["peaks"][kind]
        units = peak.units if peak is not None else 0.0
        where = f"at {peak.second} s on {peak.partition}" if peak is not None else "none"
        baseline = found["busiest"][kind]
        rows.append(
            Row(
                goal=f"job budget: peak {name} units per partition per second, {args.holders:,} holders on one job",
                value=round(units, 1),
                unit=kind.upper(),
                target=f"< {target:,}",
                met=units < target,
                baseline=f"{baseline:,.1f} {kind.upper()} in the busiest second over every partition "
                f"(ratio {units / baseline if baseline else 0:.3f}x)",
                detail=f"busiest partition {where}; {found['renewals']:,} renewals of {found['holders']:,} holders "
                f"over {END_AT:.0f} simulated s (joins over {JOIN_SECONDS:.0f} s, a batch ending and one joining "
                f"at {CHURN_AT:.0f} s, every holder throttled at {THROTTLE_AT:.0f} s); at the end the limit is "
                f"{found['limit']:g} and the room {found['room']:g} (every lease released: room = limit)",
            )
        )
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
