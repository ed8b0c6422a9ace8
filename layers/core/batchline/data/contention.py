"""When DynamoDB refuses a write for load rather than for its condition: how to tell, and how to wait.

A transaction cancelled for a conflict with another, or a call throttled on a hot partition, may pass
the same way a moment later; a failed condition never will. Callers outside the data layer (the worker's
commits) wait by the same Backoff, so it lives here rather than with the table's calls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Why DynamoDB cancels a transaction that the same transaction, tried again later, may pass.
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
# What DynamoDB answers a call when a partition (or the table) is over its throughput, once botocore's own
# retries are spent: a moment's wait, like a lost race, not a fault.
THROTTLED_ERRORS = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


def throttled(exc: Exception) -> bool:
    """True for a ClientError that says DynamoDB throttled the call."""
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in THROTTLED_ERRORS


@dataclass(frozen=True)
class Backoff:
    """The tries of a write that DynamoDB cancels for contention: full-jitter waits between them, about 10 s
    in all by default, so that writers that collided do not all come back together."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def tries(self) -> Iterator[int]:
        """Each try's number; the caller stops when one passes, or says so when they run out."""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.random() * min(self.cap, self.base * 2 ** (attempt - 1)))
            yield attempt
