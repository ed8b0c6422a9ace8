"""Where a job's budget lives in the table: the keys of its summary, of its registry of batches and of each
batch's partition (its share and its leases), and each item to and from the budget's terms."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batchline.budget import Budget, Lease, Share

KIND = "budget"
LEASE_PREFIX = f"{KIND}#"
REGISTRY = f"{KIND}#batches"


def summary_key(job_id: str) -> dict[str, str]:
    """The job's summary."""
    return {"pk": job_id, "sk": KIND}


def registry_key(job_id: str) -> dict[str, str]:
    """The set of batches with a share in the job's budget: a partition of its own, as every holder reads
    it when a batch joins, and the summary's partition has every holder's poll to serve."""
    return {"pk": f"{job_id}#{REGISTRY}", "sk": REGISTRY}


def partition(job_id: str, batch_id: str) -> str:
    return f"{job_id}#{KIND}#{batch_id}"


def share_key(job_id: str, batch_id: str) -> dict[str, str]:
    return {"pk": partition(job_id, batch_id), "sk": KIND}


def lease_key(job_id: str, batch_id: str, holder: str) -> dict[str, str]:
    return {"pk": partition(job_id, batch_id), "sk": LEASE_PREFIX + holder}


def number(value: float | None) -> Decimal | None:
    """A float as the table keeps it: a Decimal (boto3 takes no floats), to six places."""
    return None if value is None else Decimal(str(round(value, 6)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def summary_item(job_id: str, budget: Budget) -> dict[str, Any]:
    return {
        **summary_key(job_id),
        "ceiling": budget.ceiling,
        "limit": number(budget.limit),
        "room": number(budget.room),
        "members": budget.members,
    }


def summary_from_item(item: dict[str, Any]) -> Budget:
    """The summary as kept; its leases and shares are read apart."""
    return Budget(
        ceiling=int(item["ceiling"]),
        limit=float(item["limit"]),
        room=float(item["room"]),
        best_latency=_float(item.get("best_latency")),
        decreased_at=_float(item.get("decreased_at")),
        decreased_for=item.get("decreased_for"),
        members=int(item.get("members", 0)),
    )


def share_from_item(item: dict[str, Any]) -> Share:
    return Share(
        want=int(item.get("want", 0)),
        holders=int(item.get("holders", 0)),
        urgent=bool(item["urgent"]),
        deadline=_float(item.get("deadline")),
        members=int(item.get("members", 0)),
        pool=int(item.get("spare", 0)),
    )


def lease_item(job_id: str, holder: str, lease: Lease) -> dict[str, Any]:
    return {
        **lease_key(job_id, lease.batch_id, holder),
        "batch_id": lease.batch_id,
        "want": lease.want,
        "grant": lease.grant,
        "held": lease.held,
        "urgent": lease.urgent,
        "deadline": number(lease.deadline),
        "renewed": number(lease.renewed),
        "expires": number(lease.expires),
    }


def lease_from_item(item: dict[str, Any]) -> Lease:
    return Lease(
        batch_id=str(item["batch_id"]),
        want=int(item["want"]),
        grant=int(item["grant"]),
        held=int(item["held"]),
        urgent=bool(item["urgent"]),
        deadline=_float(item.get("deadline")),
        renewed=float(item["renewed"]),
        expires=float(item["expires"]),
    )
