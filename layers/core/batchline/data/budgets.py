"""Job budgets: a small summary item per job, and a partition per batch that holds the job: its share (what its
holders want together) and an item per lease.

A thousand holders on one job must not meet on one partition (DynamoDB serves 3,000 read and 1,000 write
units a second per partition), so each holder reads and writes its own batch's partition, and the job's only
shared items are the summary and a registry of the batches in the budget:

- the poll (store.poll) reads the summary and the holder's batch's share with its batch's status, eventually
  consistent; the holder queries its batch's leases only when the share's `members` moved, and reads the
  other batches' shares only when a batch joined or left (the summary's `members`) or half a lease has gone
  by (the split between batches is that stale at worst);
- a lease change is one transaction: the lease, its batch's share (conditional on it being there), and the
  summary's room only when what the lease holds moved (conditional on the room holding what it takes, so two
  holders growing at once never take more than the limit). The lease is conditional on still being there
  (one a reclaimer removed is joined afresh, never counted twice);
- a limit the report moved: an increase adds to the limit and the room together (it commutes with other
  holders' increases; one that would pass the ceiling is dropped); a decrease is conditional on the summary
  as read, and redone from the summary the refusal returns (budget.adapt has a few holders decide either,
  not each);
- an expired lease of the holder's batch goes with its holding back to the room, in one transaction
  conditional on the lease as read, so one reclaimer wins and a lease renewed meanwhile stays; when a batch
  ends, finalize gives back whatever its partition still holds (`release_batch`).

A renewal that changes nothing but its lease's times writes nothing until half its lease is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from batchline import budget as logic
from batchline.budget import Budget, Claim, Lease, Report, Share, Tuning
from batchline.data import conditions
from batchline.data.table import Table, throttled
from batchline.errors import ServerError

KIND = "budget"
LEASE_PREFIX = f"{KIND}#"
REGISTRY = f"{KIND}#batches"
RENEW_ATTEMPTS = 8
RENEW_BACKOFF_BASE = 0.01
RENEW_BACKOFF_CAP = 0.5
# At most this many keys in one BatchGetItem.
BATCH_GET_KEYS = 100
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
    leases: dict[str, Lease] | None = None  # its batch's leases as last read
    members: int | None = None  # its batch's share's `members` that `leases` goes with
    leases_read: float = 0.0  # when
    pool: int = 0  # its batch's pool as last read
    shares: dict[str, Share] | None = None  # the other batches' shares as last read
    batches: int | None = None  # the summary's `members` that `shares` goes with
    shares_read: float = 0.0  # when
    share: int | None = None  # what the split gave it at its last renewal (budget.share_of); None before one


@contextlib.contextmanager
def _contended_on_throttle(job_id: str) -> Iterator[None]:
    """DynamoDB throttling a budget's partition is contention: the holder keeps its grant, as for a lost race."""
    try:
        yield
    except ClientError as exc:
        if not throttled(exc):
            raise
        raise BudgetContended(f"DynamoDB throttled job {job_id}'s budget: {exc}") from exc


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


def _wants(budget: Budget, batch_id: str) -> int:
    """What a batch's leases in view want together."""
    return sum(v.want for v in budget.leases.values() if v.batch_id == batch_id)


def lease_item(job_id: str, holder: str, lease: Lease) -> dict[str, Any]:
    return {
        **Budgets.lease_key(job_id, lease.batch_id, holder),
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

    # ------------------------------------------------------------------------------------------ keys

    @staticmethod
    def key(job_id: str) -> dict[str, str]:
        """The job's summary."""
        return {"pk": job_id, "sk": KIND}

    @staticmethod
    def registry_key(job_id: str) -> dict[str, str]:
        """The set of batches with a share in the job's budget: a partition of its own, as every holder reads
        it when a batch joins, and the summary's partition has every holder's poll to serve."""
        return {"pk": f"{job_id}#{REGISTRY}", "sk": REGISTRY}

    @staticmethod
    def partition(job_id: str, batch_id: str) -> str:
        return f"{job_id}#{KIND}#{batch_id}"

    @classmethod
    def share_key(cls, job_id: str, batch_id: str) -> dict[str, str]:
        return {"pk": cls.partition(job_id, batch_id), "sk": KIND}

    @classmethod
    def lease_key(cls, job_id: str, batch_id: str, holder: str) -> dict[str, str]:
        return {"pk": cls.partition(job_id, batch_id), "sk": LEASE_PREFIX + holder}

    # ------------------------------------------------------------------------------------------ reads

    def get(self, job_id: str) -> Budget | None:
        """The summary with every batch's leases, read consistently (a test's or a report's look, not a
        holder's); None before its first holder."""
        found = self._table.get_key(self.key(job_id), consistent=True)
        if found is None:
            return None
        leases: dict[str, Lease] = {}
        pools: dict[str, int] = {}
        for batch_id in self._registered(job_id):
            share, held = self._batch(job_id, batch_id)
            leases.update(held)
            pools[batch_id] = share.pool if share is not None else 0
        return dataclasses.replace(summary_from_item(found), leases=leases, pools=pools)

    def _registered(self, job_id: str) -> set[str]:
        item = self._table.get_key(self.registry_key(job_id), consistent=True)
        return set(item.get("batches", ())) if item is not None else set()

    def _batch(self, job_id: str, batch_id: str) -> tuple[Share | None, dict[str, Lease]]:
        """A batch's share and leases, in one consistent query of its partition (paged past 1 MB)."""
        share: Share | None = None
        leases: dict[str, Lease] = {}
        for item in self._table.query_all(
            KeyConditionExpression=conditions.Key("pk").eq(self.partition(job_id, batch_id)), ConsistentRead=True
        ):
            if item["sk"] == KIND:
                share = share_from_item(item)
            else:
                leases[item["sk"].removeprefix(LEASE_PREFIX)] = lease_from_item(item)
        return share, leases

    def _shares(self, job_id: str, besides: str) -> dict[str, Share]:
        """Every other batch's share, eventually consistent: what the split between batches needs."""
        others = sorted(self._registered(job_id) - {besides})
        shares: dict[str, Share] = {}
        for start in range(0, len(others), BATCH_GET_KEYS):
            batch = others[start : start + BATCH_GET_KEYS]
            found = self._table.get_keys([self.share_key(job_id, b) for b in batch])
            for batch_id, item in zip(batch, found, strict=True):
                if item is not None:
                    shares[batch_id] = share_from_item(item)
        return shares

    # ------------------------------------------------------------------------------------------ renew

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
        share: Share | None = None,
    ) -> int:
        """Acquire (report None) or renew the holding's lease; its grant. `summary` and `share` (its batch's):
        as the poll just read them.

        BudgetContended if every attempt lost to another writer, or DynamoDB throttled a partition: either
        way the holder keeps what its lease still gives and tries again at its next renewal.
        """
        with _contended_on_throttle(job_id):
            return self._renew(job_id, holding, claim, report, now, tuning, ceiling, summary, share)

    def _renew(
        self,
        job_id: str,
        holding: Holding,
        claim: Claim,
        report: Report | None,
        now: float,
        tuning: Tuning,
        ceiling: int,
        summary: Budget | None,
        share: Share | None,
    ) -> int:
        batch_id = claim.batch_id
        budget: Budget | None = None
        adapting = True
        collided = 0  # writes refused: the room, a lease or the batch's share was not as read
        reread = False
        for _ in range(self._attempts):
            if reread:
                reread = False
                # Read them again. Full jitter: holders that collided must not all come back together.
                self._sleep(self._random() * min(RENEW_BACKOFF_CAP, RENEW_BACKOFF_BASE * 2 ** (collided - 1)))
                holding.leases = None
                summary = share = budget = None
            if budget is None:
                budget = self._view(job_id, holding, claim, summary, share, ceiling, now, tuning)
                if budget is None:
                    collided, reread = collided + 1, True  # its batch's share could not be made: another writer met it
                    continue
            if holding.lease is not None:
                # Its own lease as it wrote it, whatever an eventually consistent read said.
                budget = dataclasses.replace(budget, leases={**budget.leases, holding.holder: holding.lease})
            after, grant = logic.renew(budget, holding.holder, claim, report, now, tuning, ceiling=ceiling,
                                       adapting=adapting, draw=self._random())  # fmt: skip
            if after.version == budget.version:
                holding.share = logic.share_of(after, holding.holder)
                return grant  # nothing to write (see budget.renew)
            if adapting:
                refused = self._adapt(job_id, budget, after)
                if refused is not None:
                    budget = dataclasses.replace(refused, leases=budget.leases, shares=budget.shares)
                    continue  # another holder moved the limit: the step again, from the summary as it is
                adapting = False
            reclaimed = self._reclaim(job_id, holding, batch_id, budget, after)
            if reclaimed is not None and self._write_lease(job_id, holding, budget, after, reclaimed):
                holding.lease = after.leases[holding.holder]
                holding.leases = dict(after.leases)
                holding.pool = after.pools.get(batch_id, 0)
                holding.share = logic.share_of(after, holding.holder)
                return grant
            collided, reread = collided + 1, True
        raise BudgetContended(f"Renewing a lease on job {job_id}'s budget conflicted {self._attempts} times.")

    def _view(
        self,
        job_id: str,
        holding: Holding,
        claim: Claim,
        summary: Budget | None,
        share: Share | None,
        ceiling: int,
        now: float,
        tuning: Tuning,
    ) -> Budget | None:
        """The budget to step from: the polled summary, the batch's leases and the other batches' shares as
        last read, each read again only when it moved (or a lease ago: a batch-mate that died is found
        then, and the split between batches is that stale at worst). None if its batch's share could not be
        made (the transaction met another)."""
        batch_id = claim.batch_id
        stale = tuning.lease_seconds
        if summary is None:
            found = self._table.get_key(self.key(job_id), consistent=True)
            summary = summary_from_item(found) if found is not None else None
        if summary is None:
            # The job's first holder (or one racing another first holder): whoever's put lands, both use it.
            found = self._table.put_if(summary_item(job_id, Budget.fresh(ceiling)), conditions.Attr("pk").not_exists())
            summary = summary_from_item(found) if found else Budget.fresh(ceiling)
        members = summary.members  # the summary's, with its own batch's join if it makes it now
        made = False
        if (holding.leases is None or share is None or share.members != holding.members
                or now - holding.leases_read >= stale):  # fmt: skip
            share, leases = self._batch(job_id, batch_id)
            if share is None:
                reasons = self._join(job_id, claim)
                if reasons and reasons[0] != "ConditionalCheckFailed":
                    return None
                made = not reasons
                members += 1 if made else 0
                # Made now (nothing in it), or by a batch-mate just before: then read what it holds.
                share, leases = (
                    (Share(0, 0, claim.urgent, claim.deadline), {}) if not reasons else self._batch(job_id, batch_id)
                )
                if share is None:
                    return None
            holding.leases = leases
            holding.members = share.members
            holding.pool = share.pool
            holding.leases_read = now
        elif share is not None:
            holding.pool = share.pool  # as polled: a stale one costs a refused write, never a grant too many
        if holding.shares is None or members != holding.batches or now - holding.shares_read >= stale:
            # A summary no batch has joined but its own has no registry to read.
            holding.shares = self._shares(job_id, batch_id) if members > 1 or not made else {}
            holding.batches = members
            holding.shares_read = now
        pools = {batch_id: holding.pool}
        return dataclasses.replace(summary, leases=holding.leases, shares=holding.shares, pools=pools)

    def _join(self, job_id: str, claim: Claim) -> list[str | None]:
        """A batch's first holder: its share, and its name in the registry, so other batches' holders split
        with it. Refused on its first action when another of its holders made it first; [] when made."""
        return self._table.transact(
            ("Put", {"Item": {**self.share_key(job_id, claim.batch_id), "batch_id": claim.batch_id, "want": 0,
                              "holders": 0, "members": 0, "spare": 0, "urgent": claim.urgent,
                              "deadline": _number(claim.deadline)},
                     "ConditionExpression": "attribute_not_exists(sk)"}),
            ("Update", {"Key": self.registry_key(job_id), "UpdateExpression": "ADD batches :b",
                        "ExpressionAttributeValues": {":b": {claim.batch_id}}}),
            ("Update", {"Key": self.key(job_id), "UpdateExpression": "ADD members :one",
                        "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":one": 1}}),
        )  # fmt: skip

    def release(self, job_id: str, holding: Holding) -> None:
        """Give the lease back at once: it goes, and what it held goes to its batch's pool, together; the last
        of a batch's holders gives the pool back to the room."""
        lease = holding.lease
        if lease is None:
            return
        holding.lease = None
        left = sum(v.want for h, v in (holding.leases or {}).items() if h != holding.holder)
        actions = list(self._leaving(job_id, holding.holder, lease, "attribute_exists(sk)", {}))
        if lease.want and not left:
            actions.append(self._room_update(job_id, 0, moved=True))  # its batch wants nothing now
        # Cancelled only when a reclaimer took the expired lease (and its holding) first: nothing left to do.
        if not self._table.transact(*actions):
            self._drain(job_id, lease.batch_id)

    def release_batch(self, job_id: str, batch_id: str) -> None:
        """A batch has ended: whatever its partition still holds (a worker that died with its lease) goes back
        to the room, and the batch leaves the budget."""
        _, leases = self._batch(job_id, batch_id)
        for holder, lease in leases.items():
            self._table.transact(*self._leaving(job_id, holder, lease, "attribute_exists(sk)", {}))
        found = self._table.get_key(self.share_key(job_id, batch_id), consistent=True)
        if found is None:
            return
        # Conditional on nobody holding it and on its pool as read: a worker still running (a retry after the
        # end) keeps its share.
        pool = int(found.get("spare", 0))
        unheld = "holders = :none AND spare = :pool"
        self._table.transact(
            ("Delete", {"Key": self.share_key(job_id, batch_id), "ConditionExpression": unheld,
                        "ExpressionAttributeValues": {":none": 0, ":pool": pool}}),
            ("Update", {"Key": self.registry_key(job_id), "UpdateExpression": "DELETE batches :b",
                        "ExpressionAttributeValues": {":b": {batch_id}}}),
            ("Update", {"Key": self.key(job_id), "UpdateExpression": "ADD members :one, room :pool",
                        "ExpressionAttributeValues": {":one": 1, ":pool": pool}}),
        )  # fmt: skip

    def _drain(self, job_id: str, batch_id: str) -> None:
        """A batch none of whose holders is left gives its pool back to the room (one of them does, if several
        leave at once: conditional on the pool as read)."""
        found = self._table.get_key(self.share_key(job_id, batch_id), consistent=True)
        if found is None or int(found.get("holders", 0)) or not int(found.get("spare", 0)):
            return
        pool = int(found["spare"])
        self._table.transact(
            ("Update", {"Key": self.share_key(job_id, batch_id), "UpdateExpression": "ADD spare :taken",
                        "ConditionExpression": "holders = :none AND spare = :pool",
                        "ExpressionAttributeValues": {":taken": -pool, ":none": 0, ":pool": pool}}),
            self._room_update(job_id, pool),
        )  # fmt: skip

    def _leaving(
        self, job_id: str, holder: str, lease: Lease, condition: str, values: dict[str, Any]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A lease's removal: the lease (on `condition`), and its batch's share, which gets what it held."""
        key = self.lease_key(job_id, lease.batch_id, holder)
        delete: dict[str, Any] = {"Key": key, "ConditionExpression": condition}
        if values:
            delete["ExpressionAttributeValues"] = values
        yield "Delete", delete
        yield self._share_update(job_id, lease.batch_id, -lease.want, -1, pooled=lease.held)

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
        for name, attribute, value in (("#best", "best_latency", after.best_latency),
                                       ("#at", "decreased_at", after.decreased_at),
                                       ("#for", "decreased_for", after.decreased_for)):  # fmt: skip
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{attribute}")
                values[f":{attribute}"] = value if isinstance(value, str) else _number(value)
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

    def _reclaim(self, job_id: str, holding: Holding, batch_id: str, before: Budget, after: Budget) -> int | None:
        """Remove the leases of the holder's batch the step found expired, each with its holding to the batch's
        pool; what they held together, or None if one was not as read (renewed, or reclaimed first)."""
        freed = 0
        for holder, lease in before.leases.items():
            if holder in after.leases or lease.batch_id != batch_id:
                continue
            values = {":read": _number(lease.expires)}
            if self._table.transact(*self._leaving(job_id, holder, lease, "expires = :read", values)):
                return None
            holding.members = None if holding.members is None else holding.members + 1
            freed += lease.held
        return freed

    def _write_lease(self, job_id: str, holding: Holding, before: Budget, after: Budget, reclaimed: int) -> bool:
        """Write the holder's lease; its batch's share when what it wants or the pool moved; the room when the
        pool took from it or gave back; False if refused."""
        lease = after.leases[holding.holder]
        previous = holding.lease
        batch_id = lease.batch_id
        wanted = lease.want - (previous.want if previous is not None else 0)
        joined = previous is None
        pooled = after.pools.get(batch_id, 0) - before.pools.get(batch_id, 0) - reclaimed
        # The room's move less the limit's (which _adapt wrote): what the pool took from it or gave back.
        given = round((after.room - before.room) - (after.limit - before.limit))
        # A lease that is gone was reclaimed as expired, its holding with it: written afresh, it would be
        # counted twice. Refused, the holder joins again from what it reads.
        there = "attribute_not_exists(sk)" if joined else "attribute_exists(sk)"
        item = lease_item(job_id, holding.holder, lease)
        # Its batch starts or stops wanting anything (a chunk back from a wait, its last line sent): the other
        # batches' holders must split again now, not at their next look at every share.
        woke = _wants(before, batch_id) == 0 and _wants(after, batch_id) > 0
        if not (wanted or joined or pooled or given):
            # Only its times, or what it holds within what it had: neither the pool nor the room moves.
            written = self._table.put_if(item, conditions.Attr("sk").exists()) is None
        else:
            actions = [("Put", {"Item": item, "ConditionExpression": there})]
            if wanted or joined or pooled:
                actions.append(self._share_update(job_id, batch_id, wanted, 1 if joined else 0, pooled=pooled))
            if given or woke:
                actions.append(self._room_update(job_id, given, moved=woke))
            reasons = self._table.transact(*actions)
            written = not reasons
            if reasons and reasons[0] != "ConditionalCheckFailed":
                return False  # the room or the pool did not hold what it takes
            if written and holding.members is not None:
                holding.members += 1 if (wanted or joined) else 0  # its own move: nothing to read again for it
            if written and woke and holding.batches is not None:
                holding.batches += 1  # the same for the summary's
        if not written and previous is not None:
            holding.lease = None  # reclaimed as expired: it joins again
        return written

    def _share_update(
        self, job_id: str, batch_id: str, wanted: int, joined: int, *, pooled: int = 0
    ) -> tuple[str, dict[str, Any]]:
        """A batch's share's part of a lease change: what its holders want together, how many they are, and
        its pool (what is taken from it only if it is there)."""
        values: dict[str, Any] = {":wanted": wanted, ":joined": joined, ":pooled": pooled}
        expression = "ADD want :wanted, holders :joined, spare :pooled"
        condition = "attribute_exists(sk)"
        if wanted or joined:
            expression += ", members :one"
            values[":one"] = 1
        if pooled < 0:
            condition += " AND spare >= :taken"
            values[":taken"] = -pooled
        return (
            "Update",
            {
                "Key": self.share_key(job_id, batch_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            },
        )

    def _room_update(self, job_id: str, given: int, *, moved: bool = False) -> tuple[str, dict[str, Any]]:
        """The summary's part of a lease change: `given` back to the room (negative: taken, if it is there);
        `moved`: a batch started or stopped wanting, so every holder reads the shares again."""
        values: dict[str, Any] = {":given": given}
        condition = "attribute_exists(pk)"
        if given < 0:
            condition += " AND room >= :taken"
            values[":taken"] = -given
        expression = "ADD room :given"
        if moved:
            expression += ", members :one"
            values[":one"] = 1
        return (
            "Update",
            {
                "Key": self.key(job_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            },
        )
