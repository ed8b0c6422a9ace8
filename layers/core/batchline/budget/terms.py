"""The budget's terms: what a holder claims and reports, its lease, a batch's share, and the budget as one
holder sees it. Plain frozen data: every step (renewal, limit, fairsplit) reads one and returns another."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

URGENT_WINDOW = "24h"
# Statuses a backend answers when it is overloaded, not when a request is wrong.
THROTTLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Claim:
    """What a holder asks for at each renewal: its batch, its class, its deadline and how many in flight."""

    batch_id: str
    want: int
    urgent: bool  # a 24h completion window
    deadline: float | None  # the batch's expires_at


@dataclass(frozen=True)
class Lease:
    """A holder's entry in the budget."""

    batch_id: str
    want: int
    grant: int  # what it may start until its next renewal
    held: int  # counted against the limit: its grant, or more while requests from a larger grant finish
    urgent: bool
    deadline: float | None
    renewed: float  # when it last renewed (epoch seconds): its report covers the time since
    expires: float  # a holder that does not renew by then is gone, and its share with it


@dataclass(frozen=True)
class Share:
    """A batch's entry in its job's budget, as holders of other batches see it: its holders' wants together."""

    want: int
    holders: int
    urgent: bool
    deadline: float | None
    members: int = 0  # moves whenever one of its leases joins, leaves or changes what it wants
    pool: int = 0  # what it took from the room that none of its leases holds now (Budget.pools)


@dataclass(frozen=True)
class Report:
    """What a holder saw since its last renewal."""

    successes: int = 0
    throttled: int = 0  # attempts answered 429 or 503, retried ones included
    median_latency: float | None = None  # of the attempts that got an answer, in seconds
    saturated: bool = False  # its whole grant was in flight at some moment
    in_flight: int = 0  # requests it may have running until its new grant applies: a shrink frees no more


@dataclass(frozen=True)
class Tuning:
    """How the limit moves and how long a lease lasts."""

    interval: float  # seconds between a holder's renewals
    lease_seconds: float  # a lease not renewed for this long is dropped
    increase: float = 1.0  # added to the limit per interval, job-wide, while the backend keeps up
    decrease: float = 0.5  # the limit's factor on congestion
    latency_factor: float = 2.0  # a median latency over this many times the best seen is congestion
    latency_floor: float = 0.05  # seconds; latencies below it never count as rising (noise, not queueing)


@dataclass(frozen=True)
class Budget:
    """One job's budget as a holder sees it: the summary as read, and the leases as last read."""

    ceiling: int  # the job's max_concurrency
    limit: float  # adaptive, in [1, ceiling]; grants split its integer part
    room: float  # the limit less what every batch took (its pool and its leases): negative after a cut
    leases: Mapping[str, Lease] = field(default_factory=dict)  # the holder's batch's, or every batch's
    shares: Mapping[str, Share] = field(default_factory=dict)  # the batches whose leases are not in `leases`
    # Per batch, what it took from the room that none of its leases holds now (a pool its holders grow from).
    pools: Mapping[str, int] = field(default_factory=dict)
    best_latency: float | None = None
    decreased_at: float | None = None
    decreased_for: str | None = None  # "throttled" or "latency"
    members: int = 0  # moves whenever a batch joins the budget or leaves it: the shares to read again
    version: int = 0  # moves with every step that has something to write

    @classmethod
    def fresh(cls, ceiling: int) -> Budget:
        return cls(ceiling=ceiling, limit=float(ceiling), room=float(ceiling))

    @property
    def capacity(self) -> int:
        """The whole requests in flight the limit allows."""
        return max(1, math.floor(self.limit))
