"""The split of a job's capacity between its holders: 24h batches first, max-min fair between the batches of
a class (in whole workers where the capacity allows), and each batch's share packed into as few of its
holders as it takes. Arithmetic only: it reads leases and shares and writes nothing."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

from batchline.budget.terms import Budget, Lease, Share


def share_of(budget: Budget, holder: str) -> int:
    """What the split gives `holder` of the capacity now: its grant grows to this as the room allows.

    0 when others come first, not when the room is only short for now: a holder over its share gives the
    difference back at its own next renewal, so a holder with a share but no grant yet has it soon.
    """
    if holder not in budget.leases:
        return 0
    return split(budget.capacity, budget.leases, budget.shares)[holder]


def split(capacity: int, leases: Mapping[str, Lease], shares: Mapping[str, Share] | None = None) -> dict[str, int]:
    """Each holder's share of `capacity`: 24h batches first, max-min fair between batches, then packed.

    `shares` stand for the batches none of whose leases are in `leases` (the holder reads only its own batch's).
    """
    given: dict[str, int] = {}
    for batch_id, share in allot(capacity, batches_of(leases, shares or {})).items():
        given.update(pack(share, [h for h, v in leases.items() if v.batch_id == batch_id], leases))
    return given


def batches_of(leases: Mapping[str, Lease], shares: Mapping[str, Share]) -> dict[str, Share]:
    """Every batch as the split sees it: from its leases where they are in view, else from its share."""
    by_batch: dict[str, list[Lease]] = {}
    for holder in sorted(leases):
        by_batch.setdefault(leases[holder].batch_id, []).append(leases[holder])
    batches = {b: s for b, s in shares.items() if b not in by_batch}
    for batch_id, held in by_batch.items():
        batches[batch_id] = Share(sum(v.want for v in held), len(held), held[0].urgent, held[0].deadline)
    return batches


def allot(capacity: int, batches: Mapping[str, Share]) -> dict[str, int]:
    """Each batch's share of `capacity`: 24h batches first, max-min fair between the batches of a class, what
    does not divide evenly to the earliest deadline.

    In whole workers when the capacity holds one for every batch that wants any: a worker is billed for its
    memory while it waits, so three batches on four workers' worth get two, one and one workers, not four
    workers a third empty each. What is left below one worker's want, or all of it when there are more
    batches than workers' worth, is split unit by unit (every batch moves).
    """

    def priority(batch_id: str) -> tuple[bool, float, str]:
        share = batches[batch_id]
        return (not share.urgent, share.deadline if share.deadline is not None else math.inf, batch_id)

    # A worker's want: the most any batch's holders want each, on average.
    quantum = max((math.ceil(s.want / s.holders) for s in batches.values() if s.holders and s.want), default=1)
    order = sorted(batches, key=priority)
    given = dict.fromkeys(order, 0)
    wanting = sum(1 for s in batches.values() if s.want > 0)
    for unit in (quantum, 1) if capacity // quantum >= wanting else (1,):
        left = capacity - sum(given.values())
        for urgent in (True, False):
            ranked = [b for b in order if batches[b].urgent is urgent]
            wants = {b: (batches[b].want - given[b]) // unit for b in ranked}
            for batch_id, slots in max_min_fair(left // unit, ranked, wants).items():
                given[batch_id] += slots * unit
                left -= slots * unit
    return given


def pack(share: int, holders: Sequence[str], leases: Mapping[str, Lease]) -> dict[str, int]:
    """A batch's share in as few of its holders as it takes: each in turn its whole want, those that hold a
    grant first (a share that shrinks is taken from the last of them, and a steady one moves nobody)."""
    given: dict[str, int] = {}
    for holder in sorted(holders, key=lambda h: (leases[h].grant == 0, h)):
        given[holder] = min(leases[holder].want, share)
        share -= given[holder]
    return given


def max_min_fair[K: Hashable](capacity: int, order: Sequence[K], wants: Mapping[K, int]) -> dict[K, int]:
    """Whole units of `capacity`, max-min fair over `wants`; what does not divide evenly goes in `order`."""
    given = dict.fromkeys(order, 0)
    active = [k for k in order if wants[k] > 0]
    while capacity > 0 and active:
        each, rest = divmod(capacity, len(active))
        if each == 0:
            for k in active[:rest]:
                given[k] += 1
            break
        for k in active:
            take = min(each, wants[k] - given[k])
            given[k] += take
            capacity -= take
        active = [k for k in active if given[k] < wants[k]]
    return given
