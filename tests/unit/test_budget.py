"""The job budget's pure logic: the fair split of the limit, grants that never overcommit it, and AIMD."""

from __future__ import annotations

import random

import pytest

from batchline.budget import (
    Budget,
    Claim,
    Lease,
    Report,
    Share,
    Tuning,
    max_min_fair,
    release,
    renew,
    share_of,
    split,
)

TUNING = Tuning(interval=2.0, lease_seconds=10.0)


def lease(
    batch: str, want: int, *, urgent: bool = False, deadline: float | None = None, held: int = 0, grant: int = 1
) -> Lease:
    return Lease(batch, want, grant, held, urgent, deadline, renewed=0.0, expires=100.0)


# A share for a batch whose leases are in view: the leases count, not it.
SHARE_IGNORED = Share(want=1000, holders=9, urgent=True, deadline=None)


def claim(batch: str, want: int, *, urgent: bool = False, deadline: float | None = None) -> Claim:
    return Claim(batch, want, urgent, deadline)


# ------------------------------------------------------------------------------------------ the split


def test_max_min_fair_fills_small_wants_and_shares_the_rest_equally() -> None:
    assert max_min_fair(10, ["a", "b", "c"], {"a": 2, "b": 10, "c": 10}) == {"a": 2, "b": 4, "c": 4}


def test_max_min_fair_gives_an_uneven_remainder_in_order() -> None:
    assert max_min_fair(5, ["x", "y", "z"], {"x": 9, "y": 9, "z": 9}) == {"x": 2, "y": 2, "z": 1}
    assert max_min_fair(2, ["x", "y", "z"], {"x": 9, "y": 9, "z": 9}) == {"x": 1, "y": 1, "z": 0}


def test_max_min_fair_never_gives_more_than_wanted() -> None:
    assert max_min_fair(100, ["a", "b"], {"a": 3, "b": 0}) == {"a": 3, "b": 0}


def test_a_24h_batch_is_served_before_an_unlimited_one() -> None:
    leases = {"u1": lease("unlimited", 8), "d1": lease("daily", 6, urgent=True, deadline=500.0)}
    assert split(8, leases) == {"d1": 6, "u1": 2}


def test_between_24h_batches_the_earliest_deadline_gets_the_odd_unit() -> None:
    leases = {
        "late": lease("b-late", 10, urgent=True, deadline=900.0),
        "soon": lease("b-soon", 10, urgent=True, deadline=100.0),
    }
    assert split(7, leases) == {"soon": 4, "late": 3}


def test_batches_share_fairly_however_many_holders_each_has() -> None:
    # Batch a runs three workers, b one: the batches get half each, a's half packed into as few workers as it
    # fills (a worker waiting with a quarter of its want is billed as if full), those holding a grant first.
    leases = {"a1": lease("a", 4, grant=0), "a2": lease("a", 4), "a3": lease("a", 4), "b1": lease("b", 8)}
    shares = split(12, leases)
    assert shares["b1"] == 6
    assert (shares["a2"], shares["a3"], shares["a1"]) == (4, 2, 0)


def test_the_split_is_in_whole_workers_when_there_is_one_for_every_batch() -> None:
    # Three batches of four 100-wanting workers on 400: two, one and one workers full, not four a third empty.
    leases = {f"{b}{i}": lease(b, 100, deadline=d) for b, d in (("a", 1.0), ("b", 2.0), ("c", 3.0)) for i in range(4)}
    shares = split(400, leases)
    assert sorted(shares.values(), reverse=True)[:5] == [100, 100, 100, 100, 0]
    assert [sum(v for h, v in shares.items() if h[0] == b) for b in "abc"] == [200, 100, 100]
    # Fewer workers' worth than batches: every batch moves, unit by unit.
    shares = split(250, leases)
    assert [sum(v for h, v in shares.items() if h[0] == b) for b in "abc"] == [84, 83, 83]
    shares = split(150, leases)
    assert [sum(v for h, v in shares.items() if h[0] == b) for b in "abc"] == [50, 50, 50]


def test_a_batch_known_only_by_its_share_takes_its_part_of_the_split() -> None:
    # A holder reads only its own batch's leases: the other batches come as shares, wants summed.
    leases = {"a1": lease("a", 8)}
    shares = split(12, leases, {"b": Share(want=20, holders=3, urgent=False, deadline=None), "a": SHARE_IGNORED})
    assert shares == {"a1": 6}


def test_a_holders_share_is_none_when_others_come_first_not_when_the_room_is_short() -> None:
    # A 24h batch holds everything; an unlimited batch's holder is given no share, a 24h one half, though
    # neither has a grant until the first holder renews and gives back what is over its own share.
    budget, _ = renew(Budget.fresh(8), "d1", claim("daily", 8, urgent=True, deadline=500.0), None, 0.0, TUNING,
                      ceiling=8)  # fmt: skip
    budget, unlimited = renew(budget, "u1", claim("unlimited", 8), None, 0.1, TUNING, ceiling=8)
    budget, daily = renew(budget, "d2", claim("daily-2", 8, urgent=True, deadline=600.0), None, 0.2, TUNING, ceiling=8)

    assert (unlimited, share_of(budget, "u1")) == (0, 0)
    assert (daily, share_of(budget, "d2")) == (0, 4)
    assert share_of(budget, "gone") == 0


# ------------------------------------------------------------------------------------------ the grants


def test_the_first_holder_gets_what_it_wants_within_the_limit() -> None:
    budget, grant = renew(Budget.fresh(8), "w1", claim("a", 25), None, now=0.0, tuning=TUNING, ceiling=8)
    assert grant == 8
    assert budget.leases["w1"].held == 8


def test_a_new_holder_gets_only_what_others_do_not_hold_and_they_shrink_at_their_renewal() -> None:
    budget, _ = renew(Budget.fresh(8), "a1", claim("a", 8), None, now=0.0, tuning=TUNING, ceiling=8)
    budget, grant_b = renew(budget, "b1", claim("b", 8), None, now=0.5, tuning=TUNING, ceiling=8)
    assert grant_b == 0  # a1 holds all 8: b1 waits rather than overcommit the backend
    # a1 renews with 8 still in flight: its grant shrinks to its fair share, but it still holds all 8.
    budget, grant_a = renew(budget, "a1", claim("a", 8), Report(in_flight=8), now=2.0, tuning=TUNING, ceiling=8)
    assert (grant_a, budget.leases["a1"].held) == (4, 8)
    budget, grant_b = renew(budget, "b1", claim("b", 8), Report(), now=2.5, tuning=TUNING, ceiling=8)
    assert grant_b == 0
    # Once a1 is down to its share, b1 gets the rest.
    budget, grant_a = renew(budget, "a1", claim("a", 8), Report(in_flight=4), now=4.0, tuning=TUNING, ceiling=8)
    budget, grant_b = renew(budget, "b1", claim("b", 8), Report(), now=4.5, tuning=TUNING, ceiling=8)
    assert (grant_a, grant_b) == (4, 4)


@pytest.mark.parametrize("seed", range(20))
def test_a_grant_never_overcommits_the_limit_and_the_backend_never_sees_more_than_the_ceiling(seed: int) -> None:
    rng = random.Random(seed)
    budget = Budget.fresh(10)
    in_flight: dict[str, int] = {}
    for step in range(300):
        holder = f"h{rng.randrange(6)}"
        batch = f"b{int(holder[1:]) % 3}"
        now = step * 0.4
        report = Report(throttled=rng.random() < 0.1, successes=3, saturated=True, in_flight=in_flight.get(holder, 0))
        known = holder in budget.leases
        budget, grant = renew(budget, holder, claim(batch, 6, urgent=batch == "b0"), report if known else None,
                              now=now, tuning=TUNING, ceiling=10)  # fmt: skip
        others = sum(v.held for k, v in budget.leases.items() if k != holder)
        assert grant == 0 or others + grant <= budget.capacity
        assert 1 <= budget.limit <= 10
        # The room is exactly what the limit leaves of what the leases hold and the batches' pools keep: the
        # counter the table keeps.
        taken = sum(v.held for v in budget.leases.values()) + sum(budget.pools.values())
        assert budget.room == pytest.approx(budget.limit - taken)
        assert all(pool >= 0 for pool in budget.pools.values())
        if rng.random() < 0.05:
            budget = release(budget, holder)
        # The holder runs at most max(its grant, what it had in flight) until its next renewal.
        in_flight[holder] = max(grant, in_flight.get(holder, 0)) if rng.random() < 0.5 else min(grant, rng.randrange(7))
        live = {k for k, v in budget.leases.items() if v.expires > now}
        in_flight = {k: n for k, n in in_flight.items() if k in live}
        assert sum(in_flight.values()) <= 10


def test_an_expired_lease_gives_its_share_back() -> None:
    budget, _ = renew(Budget.fresh(8), "dead", claim("a", 8), None, now=0.0, tuning=TUNING, ceiling=8)
    budget, grant = renew(budget, "new", claim("a", 8), None, now=5.0, tuning=TUNING, ceiling=8)
    assert grant == 0
    budget, grant = renew(budget, "new", claim("a", 8), Report(), now=10.5, tuning=TUNING, ceiling=8)
    assert grant == 8
    assert set(budget.leases) == {"new"}


# ----------------------------------------------------------------------------------------------- AIMD


def running(ceiling: int = 16, limit: float | None = None) -> Budget:
    budget, _ = renew(Budget.fresh(ceiling), "w", claim("a", ceiling), None, now=0.0, tuning=TUNING, ceiling=ceiling)
    if limit is None:
        return budget
    return Budget(ceiling, limit, limit - budget.leases["w"].held, budget.leases, version=budget.version)


def test_throttling_halves_the_limit() -> None:
    budget, _ = renew(running(), "w", claim("a", 16), Report(throttled=3, successes=10, in_flight=16),
                      now=2.0, tuning=TUNING, ceiling=16)  # fmt: skip
    assert budget.limit == 8


def test_several_holders_reporting_the_same_congestion_decrease_once() -> None:
    budget, _ = renew(Budget.fresh(16), "a", claim("x", 8), None, now=0.0, tuning=TUNING, ceiling=16)
    budget, _ = renew(budget, "b", claim("x", 8), None, now=0.1, tuning=TUNING, ceiling=16)
    budget, _ = renew(budget, "a", claim("x", 8), Report(throttled=1), now=2.0, tuning=TUNING, ceiling=16)
    budget, _ = renew(budget, "b", claim("x", 8), Report(throttled=1), now=2.1, tuning=TUNING, ceiling=16)
    assert budget.limit == 8
    # a's next report covers what it sent after the decrease: still throttled, so it decreases again.
    budget, _ = renew(budget, "a", claim("x", 8), Report(throttled=1), now=4.0, tuning=TUNING, ceiling=16)
    assert budget.limit == 4


def test_the_limit_never_falls_below_one() -> None:
    budget = running(limit=1.5)
    budget, grant = renew(budget, "w", claim("a", 16), Report(throttled=1), now=2.0, tuning=TUNING, ceiling=16)
    assert (budget.limit, grant) == (1.0, 1)


def test_successes_with_the_grant_in_use_raise_the_limit_by_about_one_an_interval() -> None:
    budget = running(limit=4.0)
    budget, _ = renew(budget, "w", claim("a", 16), Report(successes=5, saturated=True, in_flight=4),
                      now=2.0, tuning=TUNING, ceiling=16)  # fmt: skip
    assert budget.limit == 5.0


def test_a_holder_that_does_not_use_its_grant_does_not_raise_the_limit() -> None:
    budget = running(limit=4.0)
    budget, _ = renew(budget, "w", claim("a", 16), Report(successes=5, saturated=False), now=2.0, tuning=TUNING,
                      ceiling=16)  # fmt: skip
    assert budget.limit == 4.0


def test_the_limit_never_exceeds_the_jobs_max_concurrency() -> None:
    budget = running(ceiling=8)
    budget, grant = renew(budget, "w", claim("a", 16), Report(successes=9, saturated=True), now=2.0, tuning=TUNING,
                          ceiling=8)  # fmt: skip
    assert (budget.limit, grant) == (8.0, 8)


def test_rising_latency_halves_the_limit_once_then_becomes_the_baseline() -> None:
    budget, _ = renew(running(), "w", claim("a", 16), Report(successes=5, median_latency=0.1),
                      now=2.0, tuning=TUNING, ceiling=16)  # fmt: skip
    assert (budget.limit, budget.best_latency) == (16, 0.1)
    budget, _ = renew(budget, "w", claim("a", 16), Report(successes=5, median_latency=0.3),
                      now=4.0, tuning=TUNING, ceiling=16)  # fmt: skip
    assert budget.limit == 8
    # Still slow after halving: the backend is slower, not queueing; the baseline moves instead.
    budget, _ = renew(budget, "w", claim("a", 16), Report(successes=5, median_latency=0.3),
                      now=6.0, tuning=TUNING, ceiling=16)  # fmt: skip
    assert (budget.limit, budget.best_latency) == (8, 0.3)


def test_latency_below_the_floor_is_never_congestion() -> None:
    budget, _ = renew(running(), "w", claim("a", 16), Report(successes=5, median_latency=0.001),
                      now=2.0, tuning=TUNING, ceiling=16)  # fmt: skip
    budget, _ = renew(budget, "w", claim("a", 16), Report(successes=5, median_latency=0.01),
                      now=4.0, tuning=TUNING, ceiling=16)  # fmt: skip
    assert budget.limit == 16


def test_a_grant_takes_no_more_than_the_room_whatever_the_leases_as_read_say() -> None:
    # The leases as this holder last read them say nobody else holds anything; the room (kept as a counter
    # by every holder's writes) says 3 of 8 are taken by holders it has not read yet.
    budget = Budget(ceiling=8, limit=8.0, room=5.0)
    after, grant = renew(budget, "w", claim("a", 8), None, now=0.0, tuning=TUNING, ceiling=8)
    assert grant == 5
    assert after.room == 0


def test_a_cut_limit_takes_room_away_and_a_holder_over_it_shrinks() -> None:
    budget = running(ceiling=8)  # w holds all 8
    after, grant = renew(budget, "w", claim("a", 8), Report(throttled=1, in_flight=2), now=2.0, tuning=TUNING,
                         ceiling=8)  # fmt: skip
    assert (after.limit, grant, after.leases["w"].held, after.room) == (4.0, 4, 4, 0.0)


def test_many_small_holders_seeing_congestion_decide_one_decrease_a_few_times_not_each() -> None:
    budget, _ = renew(Budget.fresh(100), "w", claim("a", 1), None, now=0.0, tuning=TUNING, ceiling=100)
    report = Report(throttled=1, in_flight=1)
    # A holder of 1 of 100 decides with a chance of 8 in 100: most draws leave the limit to others.
    after, _ = renew(budget, "w", claim("a", 1), report, now=2.0, tuning=TUNING, ceiling=100, draw=0.5)
    assert after.limit == 100
    after, _ = renew(budget, "w", claim("a", 1), report, now=2.0, tuning=TUNING, ceiling=100, draw=0.05)
    assert after.limit == 50


def test_a_released_lease_gives_what_it_held_back_to_the_room() -> None:
    budget = running(ceiling=8)
    assert budget.room == 0
    after = release(budget, "w")
    assert (after.room, after.leases) == (8.0, {})


def test_a_quiet_renewal_that_changes_nothing_writes_nothing_until_half_the_lease_is_gone() -> None:
    budget = running(ceiling=8)  # w holds 8 of 8, renewed at 0 with a 10 s lease
    quiet = Report(successes=5, saturated=True, in_flight=8)
    after, grant = renew(budget, "w", claim("a", 8), quiet, now=2.0, tuning=TUNING, ceiling=8)
    assert (after, grant) == (budget, 8)  # the same budget: nothing to write
    after, grant = renew(budget, "w", claim("a", 8), quiet, now=5.5, tuning=TUNING, ceiling=8)
    assert after.version == budget.version + 1 and after.leases["w"].expires == 15.5


def test_a_renewal_that_reports_congestion_is_always_written() -> None:
    budget = running(ceiling=8)
    after, _ = renew(budget, "w", claim("a", 16), Report(throttled=1), now=2.0, tuning=TUNING, ceiling=8)
    assert after.version == budget.version + 1 and after.limit == 4
