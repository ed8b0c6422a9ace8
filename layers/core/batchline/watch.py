"""A running worker's watch: every interval, off the event loop, its batch's state and its job's budget in one
read, then its lease's renewal; and whether the batch's state lets it send at all (`stopped_reason`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from batchline.models import BatchRecord
from batchline.observability import logger
from batchline.pacing import Pacer
from batchline.store import Store

# A worker with no share leaves once a renewal finds it idle (Pacer.idle_renewals): no grant, nothing in flight
# and others first. Each renewal more it stayed would be an interval billed for nothing.
IDLE_RENEWALS = 1
# A worker short of its share polls this many times an interval (Watch).
SHORT_POLLS = 4


def stopped_reason(status: str, expires_at: float | None, now: float) -> str | None:
    """Why no more requests may be sent for a batch in this status, if that is so."""
    if status in ("cancelling", "cancelled"):
        return "cancelled"
    if status != "in_progress":
        return status
    if expires_at is not None and now >= expires_at:
        return "expired"
    return None


class Watch:
    """Every interval, off the event loop: the batch's state and the job's budget in one read, then the renewal.

    In its own task, so a worker whose grant is full (or none) still renews, and still hears of a cancel;
    if it `leaves`, `idle` is set once the budget has given it no share, and it has had nothing in flight, an
    interval whole.
    """

    def __init__(
        self,
        store: Store,
        batch: BatchRecord,
        pacer: Pacer,
        interval: float,
        clock: Callable[[], float],
        *,
        leaves: bool = True,
    ) -> None:
        self.store = store
        self.batch = batch
        self.pacer = pacer
        self.interval = interval
        self.clock = clock
        self.state: tuple[str, float | None] = (batch.status, batch.expires_at)
        self.stopped = asyncio.Event()
        self.idle = asyncio.Event()
        self.leaves = leaves
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                # Closing ends the wait at once; an interval gone by (TimeoutError) means poll again. A worker
                # whose grant is below its share (the room is short while others shrink) is billed for what it
                # does not send: it looks again sooner, until the room has come back.
                short = self.pacer.short()
                await asyncio.wait_for(self._closing.wait(), self.interval / SHORT_POLLS if short else self.interval)
                return
            try:
                look = await asyncio.to_thread(self.store.poll, self.batch.id, self.batch.job_id)
                self.state = (look.status, look.expires_at)
                if stopped_reason(look.status, look.expires_at, self.clock()):
                    self.stopped.set()
                await self.pacer.renew(look.summary, look.share)
                if self.leaves and self.pacer.idle_renewals >= IDLE_RENEWALS:
                    self.idle.set()
            except Exception:  # noqa: BLE001  # a failed poll must not lose the lines in flight; the next may pass
                logger.exception("Status and budget poll failed", extra={"batch_id": self.batch.id})
                self.pacer.lapse()

    async def close(self) -> None:
        """Stop renewing (a renewal under way ends first, or it could bring the lease back) and release it."""
        self._closing.set()
        await self._task
        await self.pacer.release()
