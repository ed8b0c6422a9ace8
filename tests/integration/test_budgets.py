"""Job budgets in DynamoDB: a summary with a room counter, and per batch a partition with its share and a lease
item per holder, written so holders seldom contend, never overcommit, and never meet on one partition.

Interleavings are driven by hand: a holder renews from what it read before another holder wrote, and the
conditional writes must refuse what would overcommit the limit or count a holding twice, and the holder must
step again from what is there.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from batchline import batches, files
from batchline import budget as budget_logic
from batchline.budget import Claim, Lease, Report, Tuning
from batchline.data import budgets as budgets_data
from batchline.data.budgets import BudgetContended, Budgets, Holding
from batchline.data.worker_reads import Poll
from batchline.models import BatchCreate, BatchRecord
from batchline.providers import Outcome
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.integration.conftest import RecordedRuns, Tenant
from tests.integration.test_run_steps import EchoProvider, line_ends, planned, request
from tests.integration.test_run_steps import batch as batch  # the fixture

TUNING = Tuning(interval=2.0, lease_seconds=10.0)
JOB = "job-budget1"
# Holders on one job at once: with one item holding every lease, each join rewrote all of them and lost
# the race to every other join.
HOLDERS = 120


class Calls:
    """Counts the DynamoDB calls the store makes, by operation."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        store._table.resource.meta.client.meta.events.register("before-call.dynamodb", self)

    def __call__(self, model: Any, **_: Any) -> None:
        self.seen.append(model.name)


def claim(batch: str, want: int = 8, *, urgent: bool = False) -> Claim:
    return Claim(batch, want, urgent, None)


def renew(budgets: Budgets, holding: Holding, batch: str, report: Report | None, now: float, **kwargs: Any) -> int:
    return budgets.renew(JOB, holding, claim(batch), report, now=now, tuning=TUNING, ceiling=8, **kwargs)


def polled(store: Store, batch: str) -> dict[str, Any]:
    """What a worker's poll reads of the budget: the summary and its batch's share (eventually consistent)."""
    summary, share = store._table.get_keys([Budgets.key(JOB), Budgets.share_key(JOB, batch)])
    return {
        "summary": budgets_data.summary_from_item(summary) if summary else None,
        "share": budgets_data.share_from_item(share) if share else None,
    }


def assert_room_exact(store: Store) -> None:
    """The counter, the leases and the pools agree: the room is the limit less what every lease holds and
    every batch's pool keeps."""
    kept = store.budgets.get(JOB)
    assert kept is not None
    taken = sum(lease.held for lease in kept.leases.values()) + sum(kept.pools.values())
    assert kept.room == pytest.approx(kept.limit - taken)
    assert all(pool >= 0 for pool in kept.pools.values())


def test_two_batches_split_the_jobs_limit_through_the_table(store: Store) -> None:
    budgets = store.budgets
    a, b = Holding("a1"), Holding("b1")
    assert renew(budgets, a, "batch_a", None, 0.0) == 8
    assert renew(budgets, b, "batch_b", None, 0.5) == 0  # a1 holds all 8 until it renews
    assert renew(budgets, a, "batch_a", Report(in_flight=3), 2.0) == 4
    assert renew(budgets, b, "batch_b", Report(), 2.5) == 4
    kept = budgets.get(JOB)
    assert kept is not None
    assert {h: (lease.grant, lease.held) for h, lease in kept.leases.items()} == {"a1": (4, 4), "b1": (4, 4)}
    assert kept.room == 0
    assert_room_exact(store)


def test_a_polled_renewal_with_nobody_joining_or_leaving_reads_no_lease_and_writes_only_its_own(store: Store) -> None:
    budgets = store.budgets
    a = Holding("a1")
    renew(budgets, a, "batch_a", None, 0.0)
    calls = Calls(store)
    renew(budgets, a, "batch_a", Report(), 2.0, **polled(store, "batch_a"))
    assert calls.seen == ["BatchGetItem"]  # the poll; nothing moved, so nothing else to read or write
    calls.seen.clear()
    renew(budgets, a, "batch_a", Report(), 6.0, **polled(store, "batch_a"))
    assert calls.seen == ["BatchGetItem", "PutItem"]  # half its lease gone: its own lease's times, nothing else
    # A holder of another batch joins: the summary's members move, so the next renewal reads the other
    # batches' shares again (not any lease: those of other batches are never read).
    renew(budgets, Holding("b1"), "batch_b", None, 6.5)
    calls.seen.clear()
    renew(budgets, a, "batch_a", Report(in_flight=8), 7.0, **polled(store, "batch_a"))
    assert "Query" not in calls.seen and calls.seen.count("BatchGetItem") == 2
    # A holder of its own batch joins: its share's members move, so it reads its batch's leases again.
    renew(budgets, Holding("a2"), "batch_a", None, 7.5)
    calls.seen.clear()
    renew(budgets, a, "batch_a", Report(in_flight=4), 8.0, **polled(store, "batch_a"))
    assert calls.seen.count("Query") == 1


def test_a_batch_that_starts_wanting_again_is_split_with_at_the_others_next_poll(store: Store) -> None:
    # Batch a's only worker left to wait (its share was none); when its chunk's next worker joins, b's holder,
    # which has not read the shares since, must make room at its next poll, not a lease later.
    budgets = store.budgets
    a, b = Holding("a1"), Holding("b1")
    renew(budgets, b, "batch_b", None, 0.0)  # all 8
    renew(budgets, a, "batch_a", None, 0.5)  # a's share 4, no room yet
    budgets.release(JOB, a)  # a leaves: b grows back to 8 at its next poll
    assert renew(budgets, b, "batch_b", Report(in_flight=8), 2.0, **polled(store, "batch_b")) == 8
    renew(budgets, Holding("a2"), "batch_a", None, 3.0)  # a's chunk is back
    assert renew(budgets, b, "batch_b", Report(in_flight=8), 4.0, **polled(store, "batch_b")) == 4
    assert_room_exact(store)


def test_a_hundred_holders_on_one_job_keep_to_their_batches_partitions(store: Store) -> None:
    budgets = store.budgets
    holdings = [Holding(f"h{i}") for i in range(HOLDERS)]
    calls = Calls(store)
    # Twelve batches of ten: each batch's first holder makes its share, every holder writes its lease once.
    grants = [renew(budgets, holding, f"batch_{i % 12}", None, 0.0) for i, holding in enumerate(holdings)]
    assert calls.seen.count("TransactWriteItems") == HOLDERS + 12
    assert calls.seen.count("Query") == HOLDERS
    assert sum(grants) == 8
    for holding in holdings:
        budgets.release(JOB, holding)
    # And the last holder of the one batch that held anything (all 8 went to the first to join) gives its
    # batch's pool back to the room.
    assert calls.seen.count("TransactWriteItems") == 2 * HOLDERS + 12 + 1
    kept = budgets.get(JOB)
    assert kept is not None
    assert (kept.leases, kept.room) == ({}, 8)


def test_two_holders_growing_from_the_same_read_never_take_more_than_the_limit(store: Store) -> None:
    budgets = store.budgets
    a, b = Holding("a1"), Holding("b1")
    renew(budgets, a, "batch_a", None, 0.0)
    renew(budgets, b, "batch_b", None, 0.1)  # gets 0: a1 holds all 8
    budgets.release(JOB, a)  # the room is all 8 again; both holders are about to read that
    stale = polled(store, "batch_b")
    b.shares = {}  # b read the other batches' shares before a2 joined: it thinks it is alone
    b.batches = stale["summary"].members
    assert renew(budgets, Holding("a2"), "batch_a", None, 1.0) == 4  # half: b1 wants 8 too
    calls = Calls(store)
    # b steps from its stale view (room 8, nobody else): the room's condition refuses taking 8, and it steps
    # again from the table, where a2 holds 4.
    assert renew(budgets, b, "batch_b", Report(), 1.1, **stale) == 4
    assert calls.seen.count("TransactWriteItems") == 2
    assert_room_exact(store)


def test_two_first_holders_racing_to_create_the_budget_both_end_up_in_it(store: Store) -> None:
    budgets = store.budgets
    created: list[str] = []

    def second_holder_first(**_: Any) -> None:
        # The other first holder's whole join lands between this one's read and its create.
        if not created:
            created.append("b1")
            renew(budgets, Holding("b1"), "batch_b", None, 0.0)

    store._table.resource.meta.client.meta.events.register("before-call.dynamodb.PutItem", second_holder_first)
    assert renew(budgets, Holding("a1"), "batch_a", None, 0.0) == 0  # b1 holds all 8 until it renews
    kept = budgets.get(JOB)
    assert kept is not None
    assert set(kept.leases) == {"a1", "b1"}
    assert_room_exact(store)


def test_a_renewal_that_loses_every_race_says_so(store: Store) -> None:
    sleeps: list[float] = []
    budgets = Budgets(store._table, sleep=sleeps.append, attempts=3)
    tried: list[str] = []

    def conflicting(**_: Any) -> tuple[Any, dict[str, Any]]:
        tried.append("TransactWriteItems")
        # DynamoDB cancels a transaction that meets another one on the summary at the same moment: here,
        # every one of this holder's, as the service would answer it.
        reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing"}]
        answer = {"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                  "CancellationReasons": reasons, "ResponseMetadata": {"HTTPStatusCode": 400}}  # fmt: skip
        return SimpleNamespace(status_code=400, headers={}), answer

    store._table.resource.meta.client.meta.events.register("before-call.dynamodb.TransactWriteItems", conflicting)
    with pytest.raises(BudgetContended):
        renew(budgets, Holding("b1"), "batch_b", None, 6.0)
    assert len(tried) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 0.5 for s in sleeps)  # between attempts, none after the last


def test_a_dead_holders_expired_lease_goes_and_its_holding_comes_back_to_the_room(store: Store) -> None:
    budgets = store.budgets
    renew(budgets, Holding("dead"), "batch_a", None, 0.0)  # holds 8, never renews
    late = Holding("late")
    assert renew(budgets, late, "batch_a", None, 5.0) == 0
    assert renew(budgets, late, "batch_a", Report(), 10.5) == 8  # dead's lease ended at 10
    kept = budgets.get(JOB)
    assert kept is not None
    assert set(kept.leases) == {"late"}
    assert_room_exact(store)


def test_a_dead_holder_of_another_batch_is_given_back_when_its_batch_ends(store: Store) -> None:
    # Holders read only their own batch's leases: another batch's dead lease comes back when that batch's
    # retried worker finds it, or at the latest when the batch ends.
    budgets = store.budgets
    renew(budgets, Holding("dead"), "batch_a", None, 0.0)
    late = Holding("late")
    assert renew(budgets, late, "batch_b", None, 5.0) == 0
    assert renew(budgets, late, "batch_b", Report(), 10.5) == 0
    budgets.release_batch(JOB, "batch_a")
    assert renew(budgets, late, "batch_b", Report(), 12.5) == 8
    kept = budgets.get(JOB)
    assert kept is not None and set(kept.leases) == {"late"}
    assert store._table.get_key(Budgets.share_key(JOB, "batch_a")) is None
    assert_room_exact(store)


def test_a_lease_renewed_while_another_holder_would_reclaim_it_stays_and_is_counted_once(store: Store) -> None:
    budgets = store.budgets
    slow = Holding("slow")
    renew(budgets, slow, "batch_a", None, 0.0)  # holds 8 until 10
    other = Holding("other")
    renew(budgets, other, "batch_a", None, 1.0)
    # slow renews at 9.9 (its lease now ends at 19.9); other, whose view still says it ends at 10, tries to
    # reclaim it at 10.5: refused, it reads again and finds slow alive.
    stale = polled(store, "batch_a")
    renew(budgets, slow, "batch_a", Report(in_flight=8), 9.9)
    assert renew(budgets, other, "batch_a", Report(), 10.5, **stale) == 0
    kept = budgets.get(JOB)
    assert kept is not None
    assert set(kept.leases) == {"slow", "other"}
    assert_room_exact(store)


def test_a_holder_whose_lease_was_reclaimed_joins_again_and_is_not_counted_twice(store: Store) -> None:
    budgets = store.budgets
    slow = Holding("slow")
    renew(budgets, slow, "batch_a", None, 0.0)
    renew(budgets, Holding("other"), "batch_a", None, 10.5)  # reclaims slow's expired lease, takes all 8
    # slow comes back late: its lease is gone, so it joins afresh rather than rewrite what it held.
    assert renew(budgets, slow, "batch_a", Report(in_flight=0), 11.0) == 0
    kept = budgets.get(JOB)
    assert kept is not None
    assert {h: lease.held for h, lease in kept.leases.items()} == {"other": 8, "slow": 0}
    assert_room_exact(store)


def test_releasing_twice_or_after_a_reclaim_gives_nothing_back_twice(store: Store) -> None:
    budgets = store.budgets
    a = Holding("a1")
    renew(budgets, a, "batch_a", None, 0.0)
    snapshot = Holding("a1", lease=a.lease)
    budgets.release(JOB, a)
    budgets.release(JOB, a)
    budgets.release(JOB, snapshot)  # the same lease again, from a copy that still has it
    kept = budgets.get(JOB)
    assert kept is not None
    assert (kept.room, kept.leases) == (8, {})


def test_increases_from_several_holders_all_count_and_a_stale_decrease_is_redone_not_doubled(store: Store) -> None:
    budgets = store.budgets
    a, b = Holding("a1"), Holding("b1")
    renew(budgets, a, "batch_a", None, 0.0)
    renew(budgets, b, "batch_b", None, 0.1)
    renew(budgets, a, "batch_a", Report(throttled=1, in_flight=8), 2.0)  # 8 -> 4
    stale = budgets.get(JOB)
    renew(budgets, b, "batch_b", Report(throttled=1), 2.1, summary=stale)  # the same congestion: no second cut
    kept = budgets.get(JOB)
    assert kept is not None and kept.limit == 4
    # Both report success with their grants in use: each adds its part, and neither refuses the other (with
    # two holders, each has a share large enough to decide every time).
    calls = Calls(store)
    for now in (4.0, 6.0):
        for holding, at in ((a, now), (b, now + 0.1)):
            batch_id = "batch_" + holding.holder[0]
            renew(budgets, holding, batch_id, Report(successes=5, saturated=True,
                  in_flight=holding.lease.held if holding.lease else 0), at, **polled(store, batch_id))  # fmt: skip
    assert "Query" not in calls.seen
    assert calls.seen.count("UpdateItem") == 4
    kept = budgets.get(JOB)
    assert kept is not None and kept.limit > 5
    assert_room_exact(store)
    # A decrease decided from a summary read before another holder's cut is refused, and redone from the
    # summary the refusal returns: the limit is halved once, not twice.
    before = budgets.get(JOB)
    renew(budgets, a, "batch_a", Report(throttled=1, in_flight=2), 8.0)
    halved = budgets.get(JOB)
    assert before is not None and halved is not None and halved.limit == pytest.approx(max(1, before.limit / 2))
    renew(budgets, b, "batch_b", Report(throttled=1), 8.1, summary=before)
    kept = budgets.get(JOB)
    assert kept is not None and kept.limit == halved.limit
    assert_room_exact(store)


def test_a_sending_worker_reads_its_batch_state_and_its_jobs_budget_in_one_call(
    store: Store, batch: BatchRecord
) -> None:
    store.budgets.renew(batch.job_id, Holding("a1"), claim(batch.id), None, now=0.0, tuning=TUNING, ceiling=8)
    calls = Calls(store)
    look = store.poll(batch.id, batch.job_id)
    assert calls.seen == ["BatchGetItem"]
    assert (look.status, look.expires_at) == (batch.status, batch.expires_at)
    assert look.summary is not None and look.summary.room == 0
    assert look.share is not None and (look.share.want, look.share.holders) == (8, 1)
    # A job no worker has joined yet has no budget item.
    assert store.poll(batch.id, "job-none").summary is None


def test_a_worker_asks_its_jobs_budget_for_what_is_left_of_its_chunk_and_gives_its_lease_back(
    store: Store, batch: BatchRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims: list[Claim] = []
    step = budget_logic.renew

    def recording(budget: Any, holder: str, claim: Claim, *args: Any, **kwargs: Any) -> Any:
        claims.append(claim)
        return step(budget, holder, claim, *args, **kwargs)

    monkeypatch.setattr(budget_logic, "renew", recording)
    chunk = planned(store, batch)[0]  # 10 lines
    provider = EchoProvider()
    run = ChunkRun(store, lambda job: provider, requests_in_flight=25, remaining_seconds=lambda: 900.0,
                   reserve_seconds=10.0, budget=TUNING)  # fmt: skip
    answered = run.run(batch.id, chunk, 0, job_id=batch.job_id)
    assert (answered["cursor"], answered["done"]) == (10, True)
    assert provider.sent == [str(i) for i in range(10)]
    assert claims[0] == Claim(batch.id, 10, urgent=True, deadline=float(batch.expires_at or 0))
    kept = store.budgets.get(batch.job_id)
    assert kept is not None and kept.leases == {}
    assert kept.room == kept.limit


# ------------------------------------------------------------------------------ a worker with no share
# A worker whose grant is 0 is billed for its whole memory while it waits: when the split gives it no share,
# it leaves, and Step Functions waits (`wait` seconds) before the next invocation, which costs nothing.
IDLE_WAIT = 30
INTERVAL = 0.05  # real seconds between a worker's renewals here


def unlimited_batch(store: Store, tenant: Tenant, runs: RecordedRuns, lines: int = 10) -> BatchRecord:
    """A batch of `lines` chat requests with no deadline: 24h batches are served before it."""
    data = b"".join(json.dumps(request(i)).encode() + b"\n" for i in range(lines))
    record = files.new_record(tenant.id, filename="in.jsonl", purpose="batch", size=len(data))
    store.objects.put_bytes(record.s3_key, data)
    store.files.put(record)
    create = BatchCreate(input_file_id=record.id, endpoint="/v1/chat/completions", completion_window="unlimited",
                         job_id=tenant.job.id)  # fmt: skip
    return batches.create_batch(store, runs, tenant.id, create)


def hold_everything(store: Store, job_id: str, holder: str, *, urgent: bool) -> None:
    """Another batch's worker joins the job's budget wanting all of it (a lease that outlives the test)."""
    ceiling = store.jobs.get_unscoped(job_id).sla.max_concurrency
    deadline = time.time() + 86_400 if urgent else None
    store.budgets.renew(job_id, Holding(holder), Claim(f"batch_{holder}", ceiling, urgent, deadline), None,
                        now=time.time(), tuning=Tuning(interval=2.0, lease_seconds=600.0), ceiling=ceiling)  # fmt: skip


def lease_of(store: Store, batch: BatchRecord) -> Lease | None:
    kept = store.budgets.get(batch.job_id)
    return next((lease for lease in kept.leases.values() if lease.batch_id == batch.id), None) if kept else None


def idling_worker(store: Store, provider: EchoProvider, in_flight: int = 4) -> ChunkRun:
    return ChunkRun(store, lambda job: provider, requests_in_flight=in_flight, remaining_seconds=lambda: 900.0,
                    reserve_seconds=10.0, status_check_interval=INTERVAL, idle_wait_seconds=IDLE_WAIT)  # fmt: skip


def test_a_worker_the_split_gives_no_share_leaves_at_once_to_wait_in_step_functions_sending_nothing(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    batch = unlimited_batch(store, tenant, runs)
    chunk = planned(store, batch)[0]
    hold_everything(store, batch.job_id, "urgent", urgent=True)  # a 24h batch wants the job's whole concurrency
    provider = EchoProvider()

    answered = idling_worker(store, provider).run(batch.id, chunk, 0, job_id=batch.job_id)

    assert answered == {"cursor": 0, "offset": None, "done": False, "wait": IDLE_WAIT}
    assert provider.sent == []
    assert list(store.segments.of_batch(batch.id)) == []
    kept = store.budgets.get(batch.job_id)
    assert kept is not None and set(kept.leases) == {"urgent"}  # its lease went back on the way out


def test_a_worker_short_only_of_room_stays_until_the_other_holders_give_it_back(
    store: Store, batch: BatchRecord
) -> None:
    # Another 24h batch's worker holds the whole budget until it renews: the split gives this one a share,
    # the room does not have it yet. Left now, its batch's claim would go with it, and the other batch
    # would keep everything: it stays, as every worker did before, and sends once the room is there.
    chunk = planned(store, batch)[0]
    hold_everything(store, batch.job_id, "other", urgent=True)
    grants: list[int] = []

    def other_gives_back(**_: Any) -> None:
        lease = lease_of(store, batch)
        if lease is not None and not grants:
            grants.append(lease.grant)
            store.budgets.release(batch.job_id, Holding("other", lease=store.budgets.get(batch.job_id).leases["other"]))

    store._table.resource.meta.client.meta.events.register("before-call.dynamodb.BatchGetItem", other_gives_back)
    provider = EchoProvider()

    answered = idling_worker(store, provider).run(batch.id, chunk, 0, job_id=batch.job_id)

    assert grants == [0]  # it had joined with nothing granted when the other gave its holding back
    assert answered == {"cursor": 10, "offset": chunk.end_byte, "done": True}
    assert provider.sent == [str(i) for i in range(10)]


def test_a_worker_left_with_no_share_and_nothing_in_flight_for_an_interval_records_its_lines_and_leaves(
    store: Store, tenant: Tenant, runs: RecordedRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = unlimited_batch(store, tenant, runs)
    chunk = planned(store, batch)[0]
    provider = EchoProvider()
    send = provider.send
    polls = 0
    poll = store.poll

    def counted_poll(batch_id: str, job_id: str) -> Poll:
        nonlocal polls
        polls += 1
        return poll(batch_id, job_id)

    monkeypatch.setattr(store, "poll", counted_poll)

    async def a_24h_batch_arrives_during_line_3(url: str, body: dict[str, Any], *, deadline: float) -> Outcome:
        if body["messages"][0]["content"] == "3":
            hold_everything(store, batch.job_id, "urgent", urgent=True)
            # Line 3 is answered once a renewal has taken this worker's grant away: no line is started after it.
            while (lease := lease_of(store, batch)) is None or lease.grant > 0:
                await asyncio.sleep(INTERVAL / 5)
            # The lease is written from the renewal's thread and the grant applied on the loop after it: the
            # next poll starts only once that renewal is over, so the worker's gate is closed by then.
            written_by = polls
            while polls == written_by:
                await asyncio.sleep(INTERVAL / 5)
        return await send(url, body, deadline=deadline)

    provider.send = a_24h_batch_arrives_during_line_3  # type: ignore[method-assign]

    answered = idling_worker(store, provider, in_flight=1).run(batch.id, chunk, 0, job_id=batch.job_id)

    ends = line_ends(store, batch)
    assert answered == {"cursor": 4, "offset": ends[3], "done": False, "wait": IDLE_WAIT}
    assert provider.sent == ["0", "1", "2", "3"]
    # What it answered is recorded before it leaves, and its lease is given back.
    assert store.batches.get_unscoped(batch.id).request_counts.completed == 4
    assert lease_of(store, batch) is None
    # Once the 24h batch is done, the next invocation goes on where this one stopped.
    kept = store.budgets.get(batch.job_id)
    assert kept is not None
    store.budgets.release(batch.job_id, Holding("urgent", lease=kept.leases["urgent"]))
    provider.send = send  # type: ignore[method-assign]
    again = idling_worker(store, provider).run(batch.id, chunk, 4, job_id=batch.job_id, offset=ends[3])
    assert again == {"cursor": 10, "offset": ends[9], "done": True}
    assert provider.sent == [str(i) for i in range(10)]


def test_a_worker_whose_state_machine_would_not_wait_stays_without_a_share_as_before(
    store: Store, tenant: Tenant, runs: RecordedRuns
) -> None:
    # An execution started before the state machine waited (a deploy while batches run) loops straight back
    # to Work on any answer that is not done: a worker that left there would be invoked again at once, and
    # again, until the child's history is full. Told the state machine does not wait, it stays.
    batch = unlimited_batch(store, tenant, runs)
    chunk = planned(store, batch)[0]
    hold_everything(store, batch.job_id, "urgent", urgent=True)
    grants: list[int] = []

    def urgent_batch_ends(**_: Any) -> None:
        lease = lease_of(store, batch)
        if lease is not None and not grants:
            grants.append(lease.grant)
            store.budgets.release(
                batch.job_id, Holding("urgent", lease=store.budgets.get(batch.job_id).leases["urgent"])
            )

    store._table.resource.meta.client.meta.events.register("before-call.dynamodb.BatchGetItem", urgent_batch_ends)
    provider = EchoProvider()

    answered = idling_worker(store, provider).run(batch.id, chunk, 0, job_id=batch.job_id, waits=False)

    assert grants == [0]
    assert answered == {"cursor": 10, "offset": chunk.end_byte, "done": True}
    assert provider.sent == [str(i) for i in range(10)]
