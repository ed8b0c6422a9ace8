"""DynamoDB read and write capacity units, per table, partition key and second, as on-demand DynamoDB bills them.

Every DynamoDB request moto serves in this process (its server, as in the local cloud, or the in-process
`mock_aws()`) is metered while a Meter is attached (`metered()` for a block, `attach`/`detach` for a lifetime,
as the local cloud does). Each unit is attributed to the table (or `<table>/index/<index>` for a global
secondary index) and the partition key value of the item it was consumed for, in the second `clock()` says
it was consumed: one read of the clock per request, so a benchmark can drive simulated time.

The arithmetic of what one request consumes is localcloud.capacity_units; where moto's requests are caught and
charged, localcloud.capacity_requests. Here: the meter those charges go to, and what it reports.

Per partition key, not per physical partition: AWS's partitions may each hold many keys, and adaptive
capacity may split a hot key's items across partitions; counting per key is the stricter reading.
Not modelled: PartiQL (ExecuteStatement, BatchExecuteStatement, ExecuteTransaction) consumes nothing here;
the legacy QueryFilter and ScanFilter drop items before they are billed; a failed conditional UpdateItem
is billed on the item there (moto does not compute the item it would have written); writes to local
secondary indexes; TTL deletions (free on AWS) and DynamoDB Streams reads; provisioned capacity,
throttling, burst and adaptive capacity; the ConsumedCapacity moto returns stays moto's own.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from localcloud.capacity_requests import attach, detach
from localcloud.capacity_units import Charge

__all__ = ["KINDS", "Meter", "Peak", "attach", "detach", "metered"]

KINDS = ("rcu", "wcu")


@dataclass(frozen=True)
class Peak:
    """The most units one partition key consumed in one second."""

    units: float  # capacity units consumed in that second on that partition key
    table: str  # the table, or "<table>/index/<index>" for a global secondary index
    partition: str  # the item's partition (hash) key value, as a string
    second: int  # floor(clock()) when consumed


class Meter:
    """Capacity units consumed per (table, partition key, second), from what is charged to it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # settable: a benchmark drives simulated time
        self._lock = threading.Lock()
        self._units: defaultdict[tuple[str, str, str, int], float] = defaultdict(float)

    def charge(self, charges: Iterable[Charge]) -> None:
        """Count what one request consumed, in the second the clock reads now."""
        second = math.floor(self.clock())
        with self._lock:
            for kind, table, partition, units in charges:
                self._units[(kind, table, partition, second)] += units

    def peaks(self, table: str | None = None) -> dict[str, Peak | None]:
        """The highest (table, partition, second) of each kind, of one table if given; None where none.

        Of equal ones, the earliest second (then table and partition in order), so the answer is stable.
        """
        best: dict[str, Peak | None] = dict.fromkeys(KINDS)
        with self._lock:
            cells = list(self._units.items())
        for (kind, name, partition, second), units in cells:
            if table is not None and name != table:
                continue
            peak = best[kind]
            found = Peak(units, name, partition, second)
            if peak is None or _rank(found) < _rank(peak):
                best[kind] = found
        return best

    def totals(self) -> dict[str, float]:
        """All units consumed, of each kind."""
        totals = dict.fromkeys(KINDS, 0.0)
        with self._lock:
            for (kind, *_), units in self._units.items():
                totals[kind] += units
        return totals

    def by_partition(self) -> dict[tuple[str, str], dict[str, float]]:
        """All units consumed on each (table, partition key), of each kind."""
        found: dict[tuple[str, str], dict[str, float]] = {}
        with self._lock:
            for (kind, table, partition, _), units in sorted(self._units.items()):
                found.setdefault((table, partition), dict.fromkeys(KINDS, 0.0))[kind] += units
        return found

    def per_second(self) -> dict[tuple[str, str, int], dict[str, float]]:
        """The units consumed on each (table, partition key, second), of each kind."""
        found: dict[tuple[str, str, int], dict[str, float]] = {}
        with self._lock:
            for (kind, table, partition, second), units in sorted(self._units.items()):
                found.setdefault((table, partition, second), dict.fromkeys(KINDS, 0.0))[kind] += units
        return found

    def reset(self) -> None:
        """Forget everything consumed."""
        with self._lock:
            self._units.clear()


def _rank(peak: Peak) -> tuple[float, int, str, str]:
    return (-peak.units, peak.second, peak.table, peak.partition)


@contextlib.contextmanager
def metered(clock: Callable[[], float] = time.time) -> Iterator[Meter]:
    """Meter every DynamoDB call moto serves in this process for the block (works under plain moto.mock_aws())."""
    meter = Meter(clock)
    attach(meter)
    try:
        yield meter
    finally:
        detach(meter)
