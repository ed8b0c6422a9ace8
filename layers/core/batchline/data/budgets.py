"""Job budgets: a small summary item per job beside the job's record, and an item per lease.

The summary keeps the adaptive limit and the room it leaves (the limit less what every lease holds); each
lease is an item of its own, so no holder rewrites another's. A renewal reads the summary (with the worker's
status poll) and the leases only when the summary's `members` moved, takes the pure step of
`batchline.budget`, and writes what changed so that holders seldom contend:

- the holder's lease and the room it takes or gives back, in one transaction conditional on the room holding
  what it takes (two holders growing at once never take more than the limit) and on the lease still being
  there (one a reclaimer removed is joined afresh, never counted twice);
- a limit the report moved: an increase adds to the limit and the room together (it commutes with other
  holders' increases; one that would pass the ceiling is dropped); a decrease is conditional on the summary
  as read, and redone from the summary the refusal returns;
- an expired lease's removal and its holding back to the room, in one transaction conditional on the lease
  as read, so one reclaimer wins and a lease renewed meanwhile stays.

A renewal that changes nothing but its lease's times writes nothing until half its lease is gone.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from batchline import budget as logic
from batchline.budget import Budget, Claim, Lease, Report, Tuning
from batchline.data import conditions
from batchline.data.table import Table, throttled
from batchline.errors import ServerError

KIND = "budget"
LEASE_PREFIX = f"{KIND}#"
RENEW_ATTEMPTS = 8
RENEW_BACKOFF_BASE = 0.01
RENEW_BACKOFF_CAP = 0.5
# The summary's attributes the limit's adaptation writes ("limit" is a DynamoDB reserved word).
ADAPTED = {"#limit": "limit", "#best": "best_latency", "#at": "decreased_at", "#for": "decreased_for"}


def _names(expression: str) -> dict[str, str]:
    return {k: v for k, v in ADAPTED.items() if k in expression}


class BudgetContended(ServerError):
    """Every attempt at a renewal lost to another writer: the holder keeps its grant until its lease ends."""


@dataclass
class Holding:
    """What one holder knows of its job's budget between renewals (a worker invocation's, in memory)."""

    holder: str
    lease: Lease | None = None  # as written: its `held` is what the room counts for it
    leases: dict[str, Lease] | None = None  # every lease as last read
    members: int | None = None  # the summary's `members` that `leases` goes with
    share: int | None = None  # what the split gave it at its last renewal (budget.share_of); None before one


def _number(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 6)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def summary_item(job_id: str, budget: Budget) -> dict[str, Any]:
    return {
        **Budgets.key(job_id),
        "ceiling": budget.ceiling,
        "limit": _number(budget.limit),
        "room": _number(budget.room),
        "members": budget.members,
    }


def summary_from_item(item: dict[str, Any]) -> Budget:
    """The summary as kept; its leases are read apart."""
    return Budget(
        ceiling=int(item["ceiling"]),
        limit=float(item["limit"]),
        room=float(item["room"]),
        best_latency=_float(item.get("best_latency")),
        decreased_at=_float(item.get("decreased_at")),
        decreased_for=item.get("decreased_for"),
        members=int(item.get("members", 0)),
    )


def lease_item(job_id: str, holder: str, lease: Lease) -> dict[str, Any]:
    return {
        **Budgets.lease_key(job_id, holder),
        "batch_id": lease.batch_id,
        "want": lease.want,
        "grant": lease.grant,
        "held": lease.held,
        "urgent": lease.urgent,
        "deadline": _number(lease.deadline),
        "renewed": _number(lease.renewed),
        "expires": _number(lease.expires),
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

    @staticmethod
    def lease_key(job_id: str, holder: str) -> dict[str, str]:
        return {"pk": job_id, "sk": LEASE_PREFIX + holder}

    def get(self, job_id: str) -> Budget | None:
        """The summary and every lease, in one consistent query (paged past 1 MB); None before its first holder."""
        summary: Budget | None = None
        leases: dict[str, Lease] = {}
        for item in self._table.query_all(
            KeyConditionExpression=conditions.Key("pk").eq(job_id) & conditions.Key("sk").begins_with(KIND),
            ConsistentRead=True,
        ):
            if item["sk"] == KIND:
                summary = summary_from_item(item)
            else:
                leases[item["sk"].removeprefix(LEASE_PREFIX)] = lease_from_item(item)
        # Leases are only written with the summary's room, so none is there without it.
        return dataclasses.replace(summary, leases=leases) if summary is not None else None

    def renew(
        self,
        job_id: str,
        holding: Holding,
        claim: Claim,
        report: Report | None,
        *,
        now: float,
        tuning: Tuning,
        ceiling: int,
        summary: Budget | None = None,
    ) -> int:
        """Acquire (report None) or renew the holding's lease; its grant. `summary`: as the poll just read it.

        BudgetContended if every attempt lost to another writer, or DynamoDB throttled the job's partition:
        either way the holder keeps what its lease still gives and tries again at its next renewal.
        """
        try:
            return self._renew(job_id, holding, claim, report, now=now, tuning=tuning, ceiling=ceiling,
                               summary=summary)  # fmt: skip
        except ClientError as exc:
            if not throttled(exc):
                raise
            raise BudgetContended(f"DynamoDB throttled job {job_id}'s budget: {exc}") from exc

    def _renew(
        self,
        job_id: str,
        holding: Holding,
        claim: Claim,
        report: Report | None,
        *,
        now: float,
        tuning: Tuning,
        ceiling: int,
        summary: Budget | None,
    ) -> int:
        budget = self._view(job_id, holding, summary, ceiling)
        adapting = True
        for attempt in range(self._attempts):
            if holding.lease is not None:
                # Its own lease as it wrote it, whatever an eventually consistent read said.
                budget = dataclasses.replace(budget, leases={**budget.leases, holding.holder: holding.lease})
            after, grant = logic.renew(
                budget, holding.holder, claim, report, now, tuning, ceiling=ceiling, adapting=adapting
            )
            if after.version == budget.version:
                holding.share = logic.share_of(after, holding.holder)
                return grant  # nothing to write (see budget.renew)
            if adapting:
                refused = self._adapt(job_id, budget, after)
                if refused is not None:
                    budget = dataclasses.replace(refused, leases=budget.leases)
                    continue  # another holder moved the limit: the step again, from the summary as it is
                adapting = False
            if self._reclaim(job_id, budget, after) and self._write_lease(job_id, holding, after):
                holding.lease = after.leases[holding.holder]
                holding.leases = dict(after.leases)
                holding.members = after.members
                holding.share = logic.share_of(after, holding.holder)
                return grant
            # The room or a lease was not as read: read both again. Full jitter: holders that collided
            # must not all come back together.
            self._sleep(self._random() * min(RENEW_BACKOFF_CAP, RENEW_BACKOFF_BASE * 2**attempt))
            budget = self._view(job_id, holding, None, ceiling)
        raise BudgetContended(f"Renewing a lease on job {job_id}'s budget conflicted {self._attempts} times.")

    def release(self, job_id: str, holding: Holding) -> None:
        """Give the lease back at once: it goes, and what it held goes back to the room, together."""
        lease = holding.lease
        if lease is None:
            return
        holding.lease = None
        # Cancelled only when a reclaimer took the expired lease (and its holding) first: nothing left to do.
        self._table.transact(
            ("Delete", {"Key": self.lease_key(job_id, holding.holder), "ConditionExpression": "attribute_exists(sk)"}),
            self._room_update(job_id, lease.held, moved=True),
        )

    def _view(self, job_id: str, holding: Holding, summary: Budget | None, ceiling: int) -> Budget:
        """The budget to step from: the polled summary with the leases as last read, unless they moved."""
        if summary is not None and holding.leases is not None and summary.members == holding.members:
            return dataclasses.replace(summary, leases=holding.leases)
        budget = self.get(job_id)
        if budget is None:
            # The job's first holder (or one racing another first holder): whoever's put lands, both use it.
            self._table.put_if(summary_item(job_id, Budget.fresh(ceiling)), conditions.Attr("pk").not_exists())
            budget = self.get(job_id) or Budget.fresh(ceiling)
        holding.leases = dict(budget.leases)
        holding.members = budget.members
        return budget

    def _adapt(self, job_id: str, before: Budget, after: Budget) -> Budget | None:
        """Write the limit's move; None when written or dropped, else the summary that refused it."""
        fields = ("limit", "best_latency", "decreased_at", "decreased_for")
        if all(getattr(after, f) == getattr(before, f) for f in fields):
            return None
        old, new = _number(before.limit), _number(after.limit)
        assert old is not None and new is not None  # a limit is always a number
        values: dict[str, Any] = {":step": new - old}
        best, best_before = after.best_latency, before.best_latency
        better = best == best_before or best_before is None or (best is not None and best < best_before)
        same_cut = (after.decreased_at, after.decreased_for) == (before.decreased_at, before.decreased_for)
        if new >= old and better and same_cut:
            # An increase, or a better latency seen: it adds to what other holders added meanwhile. One that
            # would pass the ceiling, or a latency another holder beat first, is dropped: the next one counts.
            condition = "#limit <= :top"
            values[":top"] = Decimal(after.ceiling) - values[":step"]
            expression = "ADD #limit :step, room :step"
            if after.best_latency != before.best_latency:
                condition += " AND (attribute_not_exists(#best) OR #best > :best)"
                expression += " SET #best = :best"
                values[":best"] = _number(after.best_latency)
            self._table.update_or_current(self.key(job_id), expression, condition, _names(expression), values)
            return None
        # A decrease, or a new latency baseline, is decided from the summary as read: conditional on it.
        sets, removes = ["#limit = :new"], []
        values[":new"] = new
        for name, field, value in (("#best", "best_latency", after.best_latency),
                                   ("#at", "decreased_at", after.decreased_at),
                                   ("#for", "decreased_for", after.decreased_for)):  # fmt: skip
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{field}")
                values[f":{field}"] = value if isinstance(value, str) else _number(value)
        expression = f"SET {', '.join(sets)} ADD room :step" + (f" REMOVE {', '.join(removes)}" if removes else "")
        condition = "#limit = :old"
        values[":old"] = old
        if before.decreased_at is None:
            condition += " AND attribute_not_exists(#at)"
        else:
            condition += " AND #at = :at_read"
            values[":at_read"] = _number(before.decreased_at)
        names = _names(expression + condition)
        found = self._table.update_or_current(self.key(job_id), expression, condition, names, values)
        return summary_from_item(found) if found else None

    def _reclaim(self, job_id: str, before: Budget, after: Budget) -> bool:
        """Remove the leases the step found expired, each with its holding back to the room; False if one was
        not as read (renewed, or reclaimed by another holder first)."""
        for holder, lease in before.leases.items():
            if holder in after.leases:
                continue
            reasons = self._table.transact(
                ("Delete", {"Key": self.lease_key(job_id, holder), "ConditionExpression": "expires = :read",
                            "ExpressionAttributeValues": {":read": _number(lease.expires)}}),
                self._room_update(job_id, lease.held, moved=True),
            )  # fmt: skip
            if reasons:
                return False
        return True

    def _write_lease(self, job_id: str, holding: Holding, after: Budget) -> bool:
        """Write the holder's lease, and what it takes from or gives back to the room; False if refused."""
        lease = after.leases[holding.holder]
        previous = holding.lease
        taken = lease.held - (previous.held if previous is not None else 0)
        moved = previous is None or previous.want != lease.want
        # A lease that is gone was reclaimed as expired, its holding with it: written afresh, it would be
        # counted twice. Refused, the holder joins again from what it reads.
        there = "attribute_not_exists(sk)" if previous is None else "attribute_exists(sk)"
        item = lease_item(job_id, holding.holder, lease)
        if taken == 0 and not moved:
            # Only its times (so it holds a lease already): the room does not move.
            written = self._table.put_if(item, conditions.Attr("sk").exists()) is None
        else:
            reasons = self._table.transact(
                ("Put", {"Item": item, "ConditionExpression": there}), self._room_update(job_id, -taken, moved=moved)
            )
            written = not reasons
            if reasons and reasons[0] != "ConditionalCheckFailed":
                return False  # the room did not hold what it takes
        if not written and previous is not None:
            holding.lease = None  # reclaimed as expired: it joins again
        return written

    def _room_update(self, job_id: str, given: int, *, moved: bool) -> tuple[str, dict[str, Any]]:
        """The summary's part of a lease change: `given` back to the room (negative: taken, if it is there)."""
        values = {":given": given, ":moved": 1 if moved else 0}
        condition = "attribute_exists(pk)"
        if given < 0:
            condition += " AND room >= :taken"
            values[":taken"] = -given
        return (
            "Update",
            {
                "Key": self.key(job_id),
                "UpdateExpression": "ADD room :given, members :moved",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            },
        )
