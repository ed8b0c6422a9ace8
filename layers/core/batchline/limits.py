"""Per-tenant limits: a request rate per API key (shared by every api container) and enqueued requests.

The rate is a fixed one-second window per key, counted in the table (`data/rates.py`) so that every api
container sees the same count. That count's write is the whole cost: 1 write request unit per API request,
refused ones included (DynamoDB bills a failed condition as a write): about $0.625 per million requests on
demand. No read. A key leaves one ~100-byte item per second it is used; TTL deletes them for free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchline.errors import RateLimited

if TYPE_CHECKING:
    from batchline.data.rates import Rates


def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes `x-ratelimit-reset-*`: "120ms" under a second, else "1s", "1m30s"."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class RateState:
    """Where a key stands in its current window, as the `x-ratelimit-*-requests` headers say it."""

    limit: int
    remaining: int
    reset_seconds: float

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": reset_text(self.reset_seconds),
        }


class RateLimiter:
    """Counts a key's requests (in the store's `rates`), one window per second; the clock is injected for tests."""

    def __init__(self, rates: Rates, *, clock: Callable[[], float] = time.time) -> None:
        self._rates = rates
        self._clock = clock

    def hit(self, key_id: str, limit: int) -> RateState:
        """Count one request; RateLimited (with the headers and Retry-After) when the window is full."""
        now = self._clock()
        window = math.floor(now)
        reset = window + 1 - now
        used = self._rates.count(key_id, window, limit)
        if used is None:
            state = RateState(limit=limit, remaining=0, reset_seconds=reset)
            raise RateLimited(
                f"Rate limit reached for requests: limit {limit} per second on this API key. "
                f"Please try again in {reset_text(reset)}.",
                code="rate_limit_exceeded",
                headers={**state.headers(), "Retry-After": str(max(1, math.ceil(reset)))},
            )
        return RateState(limit=limit, remaining=max(0, limit - used), reset_seconds=reset)
