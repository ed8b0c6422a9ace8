"""The job's summary item: made by the job's first holder, the limit's moves written so that holders'
increases commute and a decrease is decided from the summary as read, and the room's part of a lease change."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batchline.budget import Budget
from batchline.data import conditions
from batchline.data.budgets.items import number, summary_from_item, summary_item, summary_key
from batchline.data.table import Table
from batchline.data.transactions import Transaction

# The summary's attributes the limit's adaptation writes ("limit" is a DynamoDB reserved word).
ADAPTED = {"#limit": "limit", "#best": "best_latency", "#at": "decreased_at", "#for": "decreased_for"}


def _names(expression: str) -> dict[str, str]:
    return {k: v for k, v in ADAPTED.items() if k in expression}


def read_or_make(table: Table, job_id: str, ceiling: int) -> Budget:
    """The summary read consistently; made fresh by the job's first holder."""
    found = table.get_key(summary_key(job_id), consistent=True)
    if found is not None:
        return summary_from_item(found)
    # The job's first holder (or one racing another first holder): whoever's put lands, both use it.
    found = table.put_if(summary_item(job_id, Budget.fresh(ceiling)), conditions.Attr("pk").not_exists())
    return summary_from_item(found) if found else Budget.fresh(ceiling)


def write_limit(table: Table, job_id: str, before: Budget, after: Budget) -> Budget | None:
    """Write the limit's move; None when written or dropped, else the summary that refused it."""
    fields = ("limit", "best_latency", "decreased_at", "decreased_for")
    if all(getattr(after, f) == getattr(before, f) for f in fields):
        return None
    old, new = number(before.limit), number(after.limit)
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
            values[":best"] = number(after.best_latency)
        table.update_or_current(summary_key(job_id), expression, condition, _names(expression), values)
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
            values[f":{attribute}"] = value if isinstance(value, str) else number(value)
    expression = f"SET {', '.join(sets)} ADD room :step" + (f" REMOVE {', '.join(removes)}" if removes else "")
    condition = "#limit = :old"
    values[":old"] = old
    if before.decreased_at is None:
        condition += " AND attribute_not_exists(#at)"
    else:
        condition += " AND #at = :at_read"
        values[":at_read"] = number(before.decreased_at)
    names = _names(expression + condition)
    found = table.update_or_current(summary_key(job_id), expression, condition, names, values)
    return summary_from_item(found) if found else None


def room_update(txn: Transaction, job_id: str, given: int, *, moved: bool = False) -> Transaction:
    """The summary's part of a lease change ("room"): `given` back to the room (negative: taken, if it is
    there); `moved`: a batch started or stopped wanting, so every holder reads the shares again."""
    values: dict[str, Any] = {":given": given}
    condition = "attribute_exists(pk)"
    if given < 0:
        condition += " AND room >= :taken"
        values[":taken"] = -given
    expression = "ADD room :given"
    if moved:
        expression += ", members :one"
        values[":one"] = 1
    return txn.update("room", summary_key(job_id), expression, condition=condition, values=values)
