"""Job budgets in DynamoDB: leases acquired, renewed and released with conditional writes, races lost and retried.

Interleavings are driven by hand: a holder renews from a budget it read before another holder wrote, and the
conditional write must refuse it, hand back the item as it is, and let the step be taken again from there.
"""

from __future__ import annotations

from typing import Any

import pytest

from batchline import budget as budget_logic
from batchline.budget import Claim, Report, Tuning
from batchline.data.budgets import BudgetContended, Budgets
from batchline.models import BatchRecord
from batchline.store import Store
from batchline.worker import ChunkRun
from tests.integration.test_run_steps import EchoProvider, planned
from tests.integration.test_run_steps import batch as batch  # the fixture

TUNING = Tuning(interval=2.0, lease_seconds=10.0)
JOB = "job-budget1"


class Calls:
    """Counts the DynamoDB calls the store makes, by operation."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        store.table.resource.meta.client.meta.events.register("before-call.dynamodb", self)

    def __call__(self, model: Any, **_: Any) -> None:
        self.seen.append(model.name)


def claim(batch: str, want: int = 8, *, urgent: bool = False) -> Claim:
    return Claim(batch, want, urgent, None)


def test_two_batches_split_the_jobs_limit_through_the_table(store: Store) -> None:
    budgets = store.budgets
    assert budgets.renew(JOB, "a1", claim("batch_a"), None, now=0.0, tuning=TUNING, ceiling=8) == 8
    assert budgets.renew(JOB, "b1", claim("batch_b"), None, now=0.5, tuning=TUNING, ceiling=8) == 0
    assert budgets.renew(JOB, "a1", claim("batch_a"), Report(in_flight=3), now=2.0, tuning=TUNING, ceiling=8) == 4
    assert budgets.renew(JOB, "b1", claim("batch_b"), Report(), now=2.5, tuning=TUNING, ceiling=8) == 4
    kept = budgets.get(JOB)
    assert kept is not None
    assert {h: (lease.grant, lease.held) for h, lease in kept.leases.items()} == {"a1": (4, 4), "b1": (4, 4)}


def test_a_renewal_costs_one_read_and_one_write_and_a_quiet_one_no_write_while_half_its_lease_is_left(
    store: Store,
) -> None:
    store.budgets.renew(JOB, "a1", claim("batch_a"), None, now=0.0, tuning=TUNING, ceiling=8)
    calls = Calls(store)
    store.budgets.renew(JOB, "a1", claim("batch_a"), Report(), now=2.0, tuning=TUNING, ceiling=8)
    assert calls.seen == ["GetItem"]
    store.budgets.renew(JOB, "a1", claim("batch_a"), Report(), now=6.0, tuning=TUNING, ceiling=8)
    assert calls.seen == ["GetItem", "GetItem", "PutItem"]


def test_a_renewal_from_a_stale_read_is_refused_and_redone_from_the_item_the_refusal_returns(store: Store) -> None:
    budgets = store.budgets
    budgets.renew(JOB, "a1", claim("batch_a"), None, now=0.0, tuning=TUNING, ceiling=8)
    stale = budgets.get(JOB)
    # b1 writes between a1's read and a1's write.
    budgets.renew(JOB, "b1", claim("batch_b"), None, now=0.1, tuning=TUNING, ceiling=8)
    calls = Calls(store)
    grant = budgets.renew(JOB, "a1", claim("batch_a"), Report(in_flight=8), now=6.0, tuning=TUNING, ceiling=8,
                          known=stale, read=False)  # fmt: skip
    # Refused once (its write would have erased b1), then written from the returned item: no second read.
    assert calls.seen == ["PutItem", "PutItem"]
    assert grant == 4
    kept = budgets.get(JOB)
    assert kept is not None
    assert set(kept.leases) == {"a1", "b1"}


def test_two_first_holders_racing_to_create_the_budget_both_end_up_in_it(store: Store) -> None:
    budgets = store.budgets
    budgets.renew(JOB, "b1", claim("batch_b"), None, now=0.0, tuning=TUNING, ceiling=8)
    # a1 read nothing (the item did not exist yet) and creates it: refused, redone over b1's.
    grant = budgets.renew(JOB, "a1", claim("batch_a"), None, now=0.0, tuning=TUNING, ceiling=8, read=False)
    assert grant == 0  # b1 holds all 8 until it renews
    kept = budgets.get(JOB)
    assert kept is not None
    assert set(kept.leases) == {"a1", "b1"}


def test_a_renewal_that_loses_every_race_says_so(store: Store) -> None:
    sleeps: list[float] = []
    budgets = Budgets(store.table, sleep=sleeps.append, attempts=3)
    budgets.renew(JOB, "a1", claim("batch_a"), None, now=0.0, tuning=TUNING, ceiling=8)
    calls = Calls(store)

    def another_writer_first(**_: Any) -> None:
        # Another holder's write lands just before each of ours.
        store.table.resource.update_item(
            Key={"pk": JOB, "sk": "budget"}, UpdateExpression="ADD version :one", ExpressionAttributeValues={":one": 1}
        )

    store.table.resource.meta.client.meta.events.register("before-call.dynamodb.PutItem", another_writer_first)
    with pytest.raises(BudgetContended):
        budgets.renew(JOB, "a1", claim("batch_a"), Report(), now=6.0, tuning=TUNING, ceiling=8)
    assert calls.seen.count("PutItem") == 3
    assert len(sleeps) == 3 and all(0 <= s <= 0.5 for s in sleeps)


def test_a_released_lease_cannot_be_brought_back_by_a_writer_that_read_it(store: Store) -> None:
    budgets = store.budgets
    budgets.renew(JOB, "a1", claim("batch_a"), None, now=0.0, tuning=TUNING, ceiling=8)
    budgets.renew(JOB, "b1", claim("batch_b"), None, now=0.1, tuning=TUNING, ceiling=8)
    stale = budgets.get(JOB)
    budgets.release(JOB, "a1")
    grant = budgets.renew(JOB, "b1", claim("batch_b"), Report(), now=6.0, tuning=TUNING, ceiling=8,
                          known=stale, read=False)  # fmt: skip
    assert grant == 8
    kept = budgets.get(JOB)
    assert kept is not None
    assert set(kept.leases) == {"b1"}


def test_releasing_from_a_budget_that_is_gone_is_quiet(store: Store) -> None:
    store.budgets.release(JOB, "nobody")
    assert store.budgets.get(JOB) is None


def test_a_sending_worker_reads_its_batch_state_and_its_jobs_budget_in_one_call(
    store: Store, batch: BatchRecord
) -> None:
    store.budgets.renew(batch.job_id, "a1", claim(batch.id), None, now=0.0, tuning=TUNING, ceiling=8)
    calls = Calls(store)
    status, expires_at, budget = store.poll(batch.id, batch.job_id)
    assert calls.seen == ["BatchGetItem"]
    assert (status, expires_at) == (batch.status, batch.expires_at)
    assert budget is not None and set(budget.leases) == {"a1"}
    # A job no worker has joined yet has no budget item.
    assert store.poll(batch.id, "job-none")[2] is None


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
