"""Job budgets: one item per job beside the job's record, holding its adaptive limit and its holders' leases.

Every change is a read, the pure step of `batchline.budget`, and one write conditional on the version read:
a writer that lost the race gets the item as it now is with its failure and steps again from there, so a
renewal costs one read and one write unless another holder wrote in between (and no write when it changes
nothing but its lease's times, until half its lease is gone).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from batchline import budget as logic
from batchline.budget import Budget, Claim, Lease, Report, Tuning
from batchline.data import conditions
from batchline.data.table import TTL_ATTR, Table
from batchline.errors import ServerError

KIND = "budget"
# An idle job's budget goes after a day; its next holder starts again from the job's max_concurrency.
IDLE_SECONDS = 24 * 3600
RENEW_ATTEMPTS = 8
RENEW_BACKOFF_BASE = 0.01
RENEW_BACKOFF_CAP = 0.5


class BudgetContended(ServerError):
    """Every attempt at a renewal lost to another writer: the holder keeps its grant until its lease ends."""


def _number(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 6)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def to_item(job_id: str, budget: Budget, now: float) -> dict[str, Any]:
    leases = {
        holder: {
            "batch_id": lease.batch_id,
            "want": lease.want,
            "grant": lease.grant,
            "held": lease.held,
            "urgent": lease.urgent,
            "deadline": _number(lease.deadline),
            "renewed": _number(lease.renewed),
            "expires": _number(lease.expires),
        }
        for holder, lease in budget.leases.items()
    }
    return {
        **Budgets.key(job_id),
        "version": budget.version,
        "ceiling": budget.ceiling,
        "limit": _number(budget.limit),
        "best_latency": _number(budget.best_latency),
        "decreased_at": _number(budget.decreased_at),
        "decreased_for": budget.decreased_for,
        "leases": leases,
        TTL_ATTR: int(now) + IDLE_SECONDS,
    }


def from_item(item: dict[str, Any]) -> Budget:
    leases = {
        holder: Lease(
            batch_id=str(entry["batch_id"]),
            want=int(entry["want"]),
            grant=int(entry["grant"]),
            held=int(entry["held"]),
            urgent=bool(entry["urgent"]),
            deadline=_float(entry.get("deadline")),
            renewed=float(entry["renewed"]),
            expires=float(entry["expires"]),
        )
        for holder, entry in (item.get("leases") or {}).items()
    }
    return Budget(
        ceiling=int(item["ceiling"]),
        limit=float(item["limit"]),
        leases=leases,
        best_latency=_float(item.get("best_latency")),
        decreased_at=_float(item.get("decreased_at")),
        decreased_for=item.get("decreased_for"),
        version=int(item["version"]),
    )


class Budgets:
    """Job budgets in the table."""

    def __init__(
        self,
        table: Table,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = random.random,
        attempts: int = RENEW_ATTEMPTS,
    ) -> None:
        self._table = table
        self._sleep = sleep
        self._random = random
        self._attempts = attempts

    @staticmethod
    def key(job_id: str) -> dict[str, str]:
        return {"pk": job_id, "sk": KIND}

    def get(self, job_id: str) -> Budget | None:
        item = self._table.get_key(self.key(job_id), consistent=True)
        return from_item(item) if item is not None else None

    def renew(
        self,
        job_id: str,
        holder: str,
        claim: Claim,
        report: Report | None,
        *,
        now: float,
        tuning: Tuning,
        ceiling: int,
        known: Budget | None = None,
        read: bool = True,
    ) -> int:
        """Acquire (report None) or renew `holder`'s lease; its grant. `known` (with read=False): already read.

        BudgetContended if every attempt lost to another writer.
        """
        current = self.get(job_id) if read else known
        for attempt in range(self._attempts):
            base = current or Budget.fresh(ceiling)
            after, grant = logic.renew(base, holder, claim, report, now, tuning, ceiling=ceiling)
            if after.version == base.version:
                return grant  # nothing to write (see budget.renew)
            condition = (
                conditions.Attr("pk").not_exists()
                if current is None
                else conditions.Attr("version").eq(current.version)
            )
            found = self._table.put_if(to_item(job_id, after, now), condition)
            if found is None:
                return grant
            current = from_item(found) if found else None
            # Full jitter: holders that collided must not all come back together.
            self._sleep(self._random() * min(RENEW_BACKOFF_CAP, RENEW_BACKOFF_BASE * 2**attempt))
        raise BudgetContended(f"Renewing a lease on job {job_id}'s budget conflicted {self._attempts} times.")

    def release(self, job_id: str, holder: str) -> None:
        """Give a lease back at once. The version moves, so a writer that read it before cannot bring it back."""
        self._table.update_if(
            self.key(job_id),
            "REMOVE leases.#holder ADD version :one",
            conditions.Attr("pk").exists(),
            {"#holder": holder},
            {":one": 1},
        )
