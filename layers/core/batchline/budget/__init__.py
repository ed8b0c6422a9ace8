"""A job's concurrency budget: its adaptive limit, and the split of that limit between the job's workers.

A job's backend is shared by all of the job's running batches. Each worker invocation holds a lease on the
job's budget: what it wants in flight, what it holds, and until when the lease holds, so that the share of a
worker that died comes back by itself. Every `renew` is one step over plain data: a `Budget` is the job's
summary (its limit and the `room` the limit leaves once every lease's holding is counted), the leases of the
holder's batch as it last read them, and a `Share` (what its holders want together) for each other batch.
data/budgets/ keeps the summary in one small item and each batch's share and leases in a partition of the
batch's own, so that a thousand holders never meet on one partition, and turns the step into writes that
commute: the room is a counter, so holders rarely contend.

- the limit adapts to the backend: additive increase while the holders' requests succeed with their whole
  grant in flight, multiplicative decrease on 429s and 503s or on a median latency over `latency_factor` times
  the best seen, at most once per interval job-wide;
- the limit is split with batches of a 24h window served before `unlimited` ones, max-min fair between the
  batches of a class (a unit that does not divide evenly goes to the earliest deadline), and each batch's
  share packed into as few of its holders as it takes: each in turn gets its whole want. A worker is billed
  for its memory while it waits, so a batch holding a quarter of what it planned for runs a quarter of its
  workers, not all of them a quarter full (a worker left with nothing leaves; see worker.py);
- a holder's grant never makes what the holders count against the limit exceed it: it takes no more than the
  room left. A holder still counts what it has in flight above a shrunken grant (it cannot take those
  requests back), so what the backend sees in flight stays within the limit; a holder over its share shrinks
  at its own next renewal;
- a decrease, and an increase, is decided by the holders that see the congestion (or the room for more),
  each with a chance that grows with its share of the limit (`draw`): a thousand small holders make a
  handful of writes to the summary an interval, not a thousand, and one holder with the whole limit always
  decides.

Its parts: terms.py (the plain data every step reads and returns), fairsplit.py (who gets what of the limit),
limit.py (the limit's adaptation), renewal.py (one holder's renewal and release). What they export is here.
"""

from batchline.budget.fairsplit import allot, batches_of, max_min_fair, pack, share_of, split
from batchline.budget.limit import DECIDERS, adapt
from batchline.budget.renewal import GIVERS, release, renew
from batchline.budget.terms import THROTTLE_STATUSES, URGENT_WINDOW, Budget, Claim, Lease, Report, Share, Tuning

__all__ = [
    "DECIDERS",
    "GIVERS",
    "THROTTLE_STATUSES",
    "URGENT_WINDOW",
    "Budget",
    "Claim",
    "Lease",
    "Report",
    "Share",
    "Tuning",
    "adapt",
    "allot",
    "batches_of",
    "max_min_fair",
    "pack",
    "release",
    "renew",
    "share_of",
    "split",
]
