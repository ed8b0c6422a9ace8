"""A running batch moves: counts, cost and answers while it runs, the stack as `make local` runs it.

A 3,000-line batch on a job of 10 in flight, a loopback backend that takes 200 ms an answer: about a
minute. Polled through the official SDK, its `request_counts.completed` and `processing_cost` rise as it
goes (each worker checkpoints every CheckpointSeconds, 10 s by default), its partial results hold lines
before it ends, and all of them read with the cursor equal its final files. A cancel mid-run ends with
what was recorded plus what was in flight: every line the backend answered is an answer, once.

Lag is measured in lines, against the backend's own count, not in seconds: a slow machine slows the
backend's rate as much as the workers', so the bound holds however busy this machine is.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from openai import OpenAI

from tests.e2e.conftest import LocalCloudProcess
from tests.e2e.runs import TERMINAL, Run, create_job, create_tenant, jsonl, request_line, results, submit, wait
from tests.fakes.openai_server import FakeOpenAI

URL = "/v1/chat/completions"
LINES = 3_000
IN_FLIGHT = 10
LATENCY = 0.2
CHECKPOINT_SECONDS = 10  # the template's default, which this stack runs
# At most 10 / 0.2 s = 50 lines a second are answered; a checkpoint's worth is 500 of them, and 15 s of
# them (what "rising at least every 15 s" allows) is 750.
MOST_UNSEEN = int(15 * IN_FLIGHT / LATENCY)
CURSOR, HAS_MORE = "x-batchline-cursor", "x-batchline-has-more"


@pytest.fixture(scope="module")
def tenant(local_cloud: LocalCloudProcess) -> dict[str, str]:
    return create_tenant(local_cloud.base_url, local_cloud.admin_key, "live")


@pytest.fixture
def client(local_cloud: LocalCloudProcess, tenant: dict[str, str]) -> OpenAI:
    return OpenAI(base_url=local_cloud.base_url, api_key=tenant["key"], max_retries=2)


@pytest.fixture
def backend(local_cloud: LocalCloudProcess, tenant: dict[str, str]) -> Iterator[tuple[FakeOpenAI, str]]:
    with FakeOpenAI(latency=LATENCY) as fake:
        sla = {"completion_window": "24h", "max_concurrency": IN_FLIGHT}
        job = create_job(local_cloud.base_url, local_cloud.admin_key, tenant["id"],
                         provider={"type": "openai", "base_url": fake.base_url}, sla=sla)  # fmt: skip
        yield fake, job


@dataclass
class Partials:
    """partial_results read with its cursor, call after call, as a client following a batch would."""

    client: OpenAI
    batch_id: str
    cursor: str | None = None
    lines: list[bytes] = field(default_factory=list)
    has_more: bool = True

    def read(self) -> int:
        params = {} if self.cursor is None else {"after": self.cursor}
        page = self.client.get(f"/batches/{self.batch_id}/partial_results", cast_to=httpx.Response,
                               options={"params": params})  # fmt: skip
        new = page.content.splitlines(keepends=True)
        self.lines += new
        self.cursor, self.has_more = page.headers[CURSOR], page.headers[HAS_MORE] == "true"
        return len(new)

    def to_the_end(self) -> None:
        while self.has_more:
            self.read()


def start(client: OpenAI, job: str, prefix: str) -> tuple[list[str], str]:
    """A batch of LINES requests whose texts are their custom_ids: those ids, and the batch's id."""
    custom_ids = [f"{prefix}-{i}" for i in range(LINES)]
    batch = submit(client, jsonl([request_line(c, URL, c) for c in custom_ids]), endpoint=URL, job_id=job)
    return custom_ids, batch.id


def texts(fake: FakeOpenAI) -> list[str]:
    return [r.body["messages"][0]["content"] for r in fake.requests]


def file_lines(client: OpenAI, file_id: str | None) -> list[bytes]:
    return [] if file_id is None else client.files.content(file_id).content.splitlines(keepends=True)


@pytest.mark.timeout(600)
def test_a_running_batch_shows_its_counts_cost_and_answers_as_it_goes(
    client: OpenAI, backend: tuple[FakeOpenAI, str]
) -> None:
    fake, job = backend
    custom_ids, batch_id = start(client, job, "live")
    partials = Partials(client, batch_id)
    polls: list[tuple[float, int, int, float]] = []  # (when, answered upstream, completed, cost)
    read_while_running = 0
    while True:
        answered = fake.count  # before the retrieve: what the batch may show is at least this late
        seen = client.batches.retrieve(batch_id)
        if seen.status in TERMINAL:
            break
        assert seen.request_counts is not None
        polls.append((time.monotonic(), answered, seen.request_counts.completed, seen.processing_cost))  # type: ignore[attr-defined]
        if seen.status == "in_progress":
            read_while_running += partials.read()
        time.sleep(1.0)  # a client's polling pace; nothing waits on it
    run_ = results(client, wait(client, batch_id))
    partials.to_the_end()

    assert run_.batch.status == "completed", run_.batch
    # It moved while it ran: many rises, each count and cost live, never far behind the backend.
    completed = [p[2] for p in polls]
    assert len({c for c in completed if 0 < c < LINES}) >= 3, completed
    assert all(later >= earlier for earlier, later in itertools.pairwise(completed))
    costs = [p[3] for p in polls]
    assert all(later >= earlier for earlier, later in itertools.pairwise(costs))
    assert len({c for c in costs if c > 0}) >= 3, costs
    behind = [answered - count for _, answered, count, _ in polls]
    assert max(behind) <= MOST_UNSEEN, behind
    # Partial results held lines while it ran, and read to the end they are the final files' lines.
    assert read_while_running > 0
    output, errors = file_lines(client, run_.batch.output_file_id), file_lines(client, run_.batch.error_file_id)
    assert sorted(partials.lines) == sorted(output + errors)
    assert [line for line in partials.lines if line in set(output)] == output
    assert len(output) == LINES and sorted(texts(fake)) == sorted(custom_ids)
    # For the closing note: the longest wait between rises, in seconds, as polled here.
    rises = [when for (when, _, count, _), (_, _, before, _) in zip(polls[1:], polls, strict=False) if count > before]
    print(f"rises: {len(rises)}, longest gap {max(b - a for a, b in itertools.pairwise(rises)):.1f} s")


@pytest.mark.timeout(600)
def test_a_cancel_mid_run_keeps_every_line_the_backend_answered_and_cancels_the_rest(
    client: OpenAI, backend: tuple[FakeOpenAI, str]
) -> None:
    fake, job = backend
    custom_ids, batch_id = start(client, job, "cancel")
    # Cancel once a checkpoint shows, well before the end.
    while (seen := client.batches.retrieve(batch_id)).request_counts.completed == 0:  # type: ignore[union-attr]
        assert seen.status not in TERMINAL, seen
        time.sleep(0.5)
    client.batches.cancel(batch_id)
    run_: Run = results(client, wait(client, batch_id, timeout=300))
    sent = texts(fake)

    assert run_.batch.status == "cancelled", run_.batch
    answered = [line["custom_id"] for line in run_.output]
    cancelled = [line["custom_id"] for line in run_.errors]
    # Every custom_id once; what reached the backend is answered (recorded or in flight at the cancel), the
    # rest cancelled without being sent.
    assert sorted(answered + cancelled) == sorted(custom_ids)
    assert sorted(answered) == sorted(sent) and len(set(sent)) == len(sent)
    assert {line["error"]["code"] for line in run_.errors} == {"batch_cancelled"}
    assert 0 < len(answered) < LINES
    counts = run_.batch.request_counts
    assert counts is not None and (counts.completed, counts.failed) == (len(answered), len(cancelled))
