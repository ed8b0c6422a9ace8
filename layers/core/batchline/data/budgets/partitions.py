"""A batch's partition of its job's budget: its share (what its holders want together, how many they are and
its pool) beside its leases; the registry that lists the batches; a batch joining, a lease leaving it, its
pool drained back to the room, and the batch's end."""

from __future__ import annotations

from typing import Any

from batchline.budget import Claim, Lease, Share
from batchline.data import conditions
from batchline.data.budgets.items import (
    KIND,
    LEASE_PREFIX,
    lease_from_item,
    lease_key,
    number,
    partition,
    registry_key,
    share_from_item,
    share_key,
    summary_key,
)
from batchline.data.budgets.summary import room_update
from batchline.data.table import Table
from batchline.data.transactions import Outcome, Transaction

# At most this many keys in one BatchGetItem.
BATCH_GET_KEYS = 100


def registered(table: Table, job_id: str) -> set[str]:
    item = table.get_key(registry_key(job_id), consistent=True)
    return set(item.get("batches", ())) if item is not None else set()


def read_batch(table: Table, job_id: str, batch_id: str) -> tuple[Share | None, dict[str, Lease]]:
    """A batch's share and leases, in one consistent query of its partition (paged past 1 MB)."""
    share: Share | None = None
    leases: dict[str, Lease] = {}
    for item in table.query_all(
        KeyConditionExpression=conditions.Key("pk").eq(partition(job_id, batch_id)), ConsistentRead=True
    ):
        if item["sk"] == KIND:
            share = share_from_item(item)
        else:
            leases[item["sk"].removeprefix(LEASE_PREFIX)] = lease_from_item(item)
    return share, leases


def other_shares(table: Table, job_id: str, besides: str) -> dict[str, Share]:
    """Every other batch's share, eventually consistent: what the split between batches needs."""
    others = sorted(registered(table, job_id) - {besides})
    shares: dict[str, Share] = {}
    for start in range(0, len(others), BATCH_GET_KEYS):
        batch = others[start : start + BATCH_GET_KEYS]
        found = table.get_keys([share_key(job_id, b) for b in batch])
        for batch_id, item in zip(batch, found, strict=True):
            if item is not None:
                shares[batch_id] = share_from_item(item)
    return shares


def join(table: Table, job_id: str, claim: Claim) -> Outcome:
    """A batch's first holder: its share, and its name in the registry, so other batches' holders split
    with it. The "share" is refused when another of its holders made it first."""
    share = {**share_key(job_id, claim.batch_id), "batch_id": claim.batch_id, "want": 0, "holders": 0,
             "members": 0, "spare": 0, "urgent": claim.urgent, "deadline": number(claim.deadline)}  # fmt: skip
    return (
        table.transaction()
        .put("share", share, condition="attribute_not_exists(sk)")
        .update("registry", registry_key(job_id), "ADD batches :b", values={":b": {claim.batch_id}})
        .update(
            "summary", summary_key(job_id), "ADD members :one", condition="attribute_exists(pk)", values={":one": 1}
        )
        .write()
    )


def share_update(
    txn: Transaction, job_id: str, batch_id: str, wanted: int, joined: int, *, pooled: int = 0
) -> Transaction:
    """A batch's share's part of a lease change ("share"): what its holders want together, how many they
    are, and its pool (what is taken from it only if it is there)."""
    values: dict[str, Any] = {":wanted": wanted, ":joined": joined, ":pooled": pooled}
    expression = "ADD want :wanted, holders :joined, spare :pooled"
    condition = "attribute_exists(sk)"
    if wanted or joined:
        expression += ", members :one"
        values[":one"] = 1
    if pooled < 0:
        condition += " AND spare >= :taken"
        values[":taken"] = -pooled
    return txn.update("share", share_key(job_id, batch_id), expression, condition=condition, values=values)


def leaving(
    txn: Transaction, job_id: str, holder: str, lease: Lease, condition: str, values: dict[str, Any]
) -> Transaction:
    """A lease's removal: the "lease" (on `condition`), and its batch's "share", which gets what it held."""
    txn.delete("lease", lease_key(job_id, lease.batch_id, holder), condition=condition, values=values)
    return share_update(txn, job_id, lease.batch_id, -lease.want, -1, pooled=lease.held)


def drain(table: Table, job_id: str, batch_id: str) -> None:
    """A batch none of whose holders is left gives its pool back to the room (one of them does, if several
    leave at once: conditional on the pool as read)."""
    found = table.get_key(share_key(job_id, batch_id), consistent=True)
    if found is None or int(found.get("holders", 0)) or not int(found.get("spare", 0)):
        return
    pool = int(found["spare"])
    txn = table.transaction().update(
        "share", share_key(job_id, batch_id), "ADD spare :taken", condition="holders = :none AND spare = :pool",
        values={":taken": -pool, ":none": 0, ":pool": pool},
    )  # fmt: skip
    room_update(txn, job_id, pool).write()


def release_batch(table: Table, job_id: str, batch_id: str) -> None:
    """A batch has ended: whatever its partition still holds (a worker that died with its lease) goes back
    to the room, and the batch leaves the budget."""
    _, leases = read_batch(table, job_id, batch_id)
    for holder, lease in leases.items():
        leaving(table.transaction(), job_id, holder, lease, "attribute_exists(sk)", {}).write()
    found = table.get_key(share_key(job_id, batch_id), consistent=True)
    if found is None:
        return
    # Conditional on nobody holding it and on its pool as read: a worker still running (a retry after the
    # end) keeps its share.
    pool = int(found.get("spare", 0))
    unheld = "holders = :none AND spare = :pool"
    (
        table.transaction()
        .delete("share", share_key(job_id, batch_id), condition=unheld, values={":none": 0, ":pool": pool})
        .update("registry", registry_key(job_id), "DELETE batches :b", values={":b": {batch_id}})
        .update("summary", summary_key(job_id), "ADD members :one, room :pool", values={":one": 1, ":pool": pool})
        .write()
    )
