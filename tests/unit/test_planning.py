"""How many chunks a batch runs at once: the job's concurrency, bounded by the stack's WorkerConcurrency."""

from batchline.planning import map_concurrency


def test_chunks_in_flight_follow_the_jobs_concurrency_over_requests_per_worker() -> None:
    assert map_concurrency(50, 25, worker_concurrency=100) == 2
    assert map_concurrency(10, 25, worker_concurrency=100) == 1


def test_chunks_in_flight_never_exceed_worker_concurrency() -> None:
    # A job asking for 10,000 requests in flight would otherwise run 400 worker invocations at once.
    assert map_concurrency(10_000, 25, worker_concurrency=100) == 100
    assert map_concurrency(10_000, 25, worker_concurrency=1) == 1
