"""Deadline-aware retries with full-jitter exponential backoff that honours the upstream's Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from aws_lambda_powertools import Logger

from batchline.providers.base import REQUEST_TIMEOUT, Outcome, ProviderSettings

logger = Logger(child=True)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

RETRYABLE_STATUSES = frozenset({408, 409, 429})


class AttemptObserver(Protocol):
    """Hears of every attempt: when it starts, and what it got in how many seconds (None: it raised)."""

    def started(self) -> None: ...

    def ended(self, outcome: Outcome | None, seconds: float) -> None: ...


# The worker's budget counts throttled attempts, retried ones included, their latency and how many are at the
# backend at once. A context variable, so every provider's Retrier reports without being wired to the worker,
# and only the tasks the worker starts inside `observing_attempts` are counted.
_observer: ContextVar[AttemptObserver | None] = ContextVar("attempt_observer", default=None)


@contextlib.contextmanager
def observing_attempts(observer: AttemptObserver) -> Iterator[None]:
    """Report each attempt made in this context (and in tasks created in it) to `observer`."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def is_retryable_status(status: int) -> bool:
    """Statuses worth another attempt: timeouts, conflicts, rate limits and server errors."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None if absent."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome, whether another may follow, and how long the upstream asked us to wait."""

    outcome: Outcome
    retryable: bool = False
    retry_after: float | None = None


class Retrier:
    """Runs attempts until one is final, attempts run out, or the deadline leaves no room for the next."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait after `attempt` (1-based): the upstream's Retry-After if given, else full jitter."""
        if retry_after is not None:
            return min(retry_after, self.settings.max_retry_after)
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    async def _observed(self, attempt: Callable[[], Awaitable[Attempt]]) -> Attempt:
        observer = _observer.get()
        if observer is None:
            return await attempt()
        observer.started()
        began = self.clock()
        outcome: Outcome | None = None
        try:
            result = await attempt()
            outcome = result.outcome
            return result
        finally:
            observer.ended(outcome, self.clock() - began)

    async def run(self, attempt: Callable[[], Awaitable[Attempt]], *, deadline: float) -> Outcome:
        """The final outcome; after exhausted retries the last HTTP answer wins over a later non-answer."""
        last: Outcome | None = None
        last_answer: Outcome | None = None
        count = 0
        while count < self.settings.max_attempts and self.clock() < deadline:
            count += 1
            result = await self._observed(attempt)
            last = result.outcome
            if last.status_code is not None:
                last_answer = last
            if not result.retryable:
                return dataclasses.replace(last, attempts=count)
            if count >= self.settings.max_attempts:
                break
            wait = self.delay(count, result.retry_after)
            if self.clock() + wait >= deadline:
                break  # waiting would end past the deadline: what we have is the answer
            logger.debug("retrying", extra={"attempt": count, "status": last.status_code, "error": last.error_code})
            await self.sleep(wait)
        final = last_answer or last
        if final is None:
            return Outcome.failure(REQUEST_TIMEOUT, "The deadline passed before the request could be sent.")
        return dataclasses.replace(final, attempts=count)
