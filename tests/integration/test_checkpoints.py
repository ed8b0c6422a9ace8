"""Checkpoints on moto: a worker records as it goes, a lost one re-sends only what it had not recorded.

The upstream is the loopback OpenAI-compatible server (tests/fakes/openai_server.py), so what was sent
twice is counted where it would cost: at the backend. Checkpoints fall on a clock the answers move (one
second each), so where they fall does not depend on this machine's speed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ResponseStreamingError

from batchline import layout
from batchline.checkpoints import CHECKPOINT_TASK
from batchline.finalizing import finalize
from batchline.models import BatchRecord, Chunk
from batchline.models.batches import processing_cost
from batchline.providers import Outcome, ProviderSettings
from batchline.providers.openai_compat import OpenAICompatProvider
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_run_steps import Clock, EchoProvider, new_batch, planned, read_lines

IN_FLIGHT = 4
CHECKPOINT_SECONDS = 5.0


async def checkpoints_landed() -> None:
    """A commit takes milliseconds where an answer takes a second: those begun land before this answer counts.

    Without it the loopback answers in microseconds while moto commits in milliseconds, and where the
    checkpoints fall would depend on this machine's speed.
    """
    await asyncio.sleep(0)  # a checkpoint made due by the last answer starts
    begun = {t for t in asyncio.all_tasks() if t.get_name() == CHECKPOINT_TASK and not t.done()}
    if begun:
        await asyncio.wait(begun)  # not `await`: this line's cancellation must not cancel the commit


class Killed(BaseException):
    """The worker's process ending under it (out of memory, a crash): nothing after it runs in the invocation."""


class Upstream:
    """A provider per invocation on the loopback server; each answer moves `clock` one second, and the
    answer after `kill_after` answers kills the invocation instead of reaching it."""

    def __init__(self, fake: FakeOpenAI, clock: Clock, kill_after: int | None = None) -> None:
        self.fake, self.clock, self.kill_after = fake, clock, kill_after
        self.answered = self.started = 0

    def __call__(self, job: Any) -> Any:
        provider = OpenAICompatProvider(
            self.fake.base_url, "m", settings=ProviderSettings(allow_private_backends=True, max_attempts=1)
        )
        send = provider.send

        async def send_then_maybe_die(url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
            self.started += 1  # counted here: the server may record a request cut off by the crash late, or never
            # The worker's deadline is on the test's clock; the provider's is on the real one.
            outcome = await send(url, body, deadline=time.monotonic() + 30.0)
            await checkpoints_landed()
            self.clock.now += 1.0
            self.answered += 1
            if self.kill_after is not None and self.answered > self.kill_after:
                raise Killed  # the upstream answered (and billed) this line; the worker never records it
            return outcome

        provider.send = send_then_maybe_die  # type: ignore[method-assign]
        return provider


def invocation(store: Store, upstream: Upstream | EchoProvider, clock: Clock, in_flight: int = IN_FLIGHT) -> ChunkRun:
    providers = upstream if isinstance(upstream, Upstream) else (lambda job: upstream)
    return ChunkRun(store, providers, requests_in_flight=in_flight, remaining_seconds=lambda: 900.0,
                    reserve_seconds=10.0, status_check_interval=60.0, checkpoint_seconds=CHECKPOINT_SECONDS,
                    monotonic=clock)  # fmt: skip


def run_chunk(store: Store, run: ChunkRun, batch: BatchRecord, chunk: Chunk) -> None:
    """The state machine's loop over one chunk: invoke until it is done, from where the last one stopped."""
    answer = run.run(batch.id, chunk, 0)
    while not answer["done"]:
        answer = run.run(batch.id, chunk, answer["cursor"], offset=answer["offset"])


def committed_lines(store: Store, batch: BatchRecord) -> int:
    return sum(s.next_cursor - s.cursor for s in store.segments.of_batch(batch.id) if not s.pending)


def custom_ids(store: Store, batch: BatchRecord) -> list[str]:
    ended = store.batches.get_unscoped(batch.id)
    lines = read_lines(store, ended, ended.output_file_id) + read_lines(store, ended, ended.error_file_id)
    return sorted(line["custom_id"] for line in lines)


@pytest.mark.parametrize("in_flight", [1, IN_FLIGHT])
@pytest.mark.parametrize("kill_after", [1, 7, 23, 38])
def test_a_worker_killed_mid_chunk_resends_only_what_it_answered_after_its_last_checkpoint(
    store: Store, tenant: Tenant, runs: RecordedRuns, kill_after: int, in_flight: int
) -> None:
    batch = new_batch(store, tenant, runs, lines=40)
    chunk = planned(store, batch, lines_per_chunk=40)[0]
    clock = Clock()
    with FakeOpenAI() as fake:
        killed = Upstream(fake, clock, kill_after)
        with pytest.raises(Killed):
            invocation(store, killed, clock, in_flight).run(batch.id, chunk, 0)
        sent_before, kept = killed.started, committed_lines(store, batch)
        # Live: what the killed worker recorded is on the batch already, its cost with it.
        running = store.batches.get_unscoped(batch.id)
        assert running.status == "in_progress"
        assert running.request_counts.completed == kept
        assert running.processing_cost == processing_cost(running.usage.total_tokens, running.price_1m_tokens)
        if in_flight == 1 and kill_after > CHECKPOINT_SECONDS:
            # Answered in order: the first checkpoint was due at the fifth answer and began before the crash
            # (a commit under way when the process dies may land or not; here it lands). Out of order,
            # the prefix may still be empty then: only the invariants below hold whatever the order.
            assert kept == kill_after // CHECKPOINT_SECONDS * CHECKPOINT_SECONDS and running.processing_cost > 0

        # The state machine retries the invocation with the same input: it goes on from the checkpoint.
        run_chunk(store, invocation(store, Upstream(fake, clock), clock, in_flight), batch, chunk)
        texts = Counter(json.loads(r.body["messages"][-1]["content"]) for r in fake.requests)

    duplicates = fake.count - 40
    assert set(texts) == set(range(40))
    # Lines recorded before the crash are never sent again (their texts are 0..kept-1, the chunk's prefix);
    # at most what was sent after the last checkpoint is.
    assert all(texts[i] == 1 for i in range(kept))
    assert duplicates <= sent_before - kept
    finalize(store, lambda *_: None, batch.id, None)
    ended = store.batches.get_unscoped(batch.id)
    assert custom_ids(store, ended) == sorted(f"r{i}" for i in range(40))
    assert (ended.status, ended.request_counts.completed, ended.request_counts.failed) == ("completed", 40, 0)
    output = read_lines(store, ended, ended.output_file_id)
    assert ended.usage.total_tokens == sum(line["response"]["body"]["usage"]["total_tokens"] for line in output)
    assert ended.processing_cost == processing_cost(ended.usage.total_tokens, 0.5) > 0


def test_a_worker_records_every_checkpoint_while_it_runs_not_only_at_its_end(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs, lines=30)
    chunk = planned(store, batch, lines_per_chunk=30)[0]
    clock = Clock()
    provider = EchoProvider()
    send, seen = provider.send, []

    async def watching(url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        # What a client polling the batch sees as each request goes out.
        await checkpoints_landed()
        seen.append(store.batches.get_unscoped(batch.id).request_counts.completed)
        clock.now += 1.0
        return await send(url, body, deadline=deadline)

    provider.send = watching  # type: ignore[method-assign]
    run_chunk(store, invocation(store, provider, clock), batch, chunk)
    # One invocation, and its counts rose while it ran, a checkpoint at a time, never by more than one's worth.
    rises = [b - a for a, b in itertools.pairwise(seen) if b != a]
    assert len(rises) >= 4 and seen[-1] > 0
    assert max(rises) <= CHECKPOINT_SECONDS + IN_FLIGHT
    segments = sorted(store.segments.of_batch(batch.id), key=lambda s: s.cursor)
    assert [(s.cursor, s.next_cursor) for s in segments] == list(
        zip([0] + [s.next_cursor for s in segments[:-1]], [s.next_cursor for s in segments], strict=True)
    )
    assert segments[-1].done and not any(s.pending for s in segments)
    assert store.batches.get_unscoped(batch.id).request_counts.completed == 30


class DroppingS3:
    """The S3 client, except that the first ranged GET of `key` breaks after `good` bytes of its body."""

    def __init__(self, client: Any, key: str, good: int) -> None:
        self._client, self._key, self._good = client, key, good
        self.ranges: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **params: Any) -> dict[str, Any]:
        answer = self._client.get_object(**params)
        if params["Key"] != self._key:
            return answer
        self.ranges.append(params["Range"])
        if len(self.ranges) == 1:
            answer["Body"] = _Breaking(answer["Body"], self._good)
        return answer


class _Breaking:
    def __init__(self, body: Any, good: int) -> None:
        self._body, self._good = body, good

    def iter_chunks(self, size: int) -> Any:
        data = self._body.read(self._good)
        yield data
        raise ResponseStreamingError(error="Connection broken: IncompleteRead")

    def close(self) -> None:
        self._body.close()


def test_a_chunk_read_that_drops_mid_way_goes_on_from_the_byte_it_reached(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = new_batch(store, tenant, runs, lines=20)
    chunk = planned(store, batch, lines_per_chunk=20)[0]
    key = layout.file_key(batch.tenant_id, batch.input_file_id)
    dropping = DroppingS3(store.objects.client, key, good=300)  # mid-way through a line
    store.objects.__dict__["client"] = dropping
    provider, clock = EchoProvider(), Clock()
    run_chunk(store, invocation(store, provider, clock), batch, chunk)
    # Read again from byte 300 on, not from the chunk's start; every line sent once.
    assert dropping.ranges[0].startswith(f"bytes={chunk.start_byte}-")
    assert dropping.ranges[1].startswith(f"bytes={chunk.start_byte + 300}-")
    assert sorted(provider.sent, key=int) == [str(i) for i in range(20)]
    finalize(store, lambda *_: None, batch.id, None)
    assert custom_ids(store, batch) == sorted(f"r{i}" for i in range(20))
