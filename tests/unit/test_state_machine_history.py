"""The batch state machine stays within Step Functions' 25,000 history events, even throttled for days.

Step Functions fails an execution whose history reaches 25,000 events (localcloud.stepfunctions holds the
local cloud to it). A state records an event when it is entered and one when it is left; a Task records
three for each attempt (TaskScheduled, TaskStarted, then TaskSucceeded or TaskFailed); an execution records
its start and its end. A Distributed Map child is an execution with a history of its own: the parent
records the Map and its run, the child its own loop over the worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchline.worker import idle_wait
from localcloud.template import load_template

ROOT = Path(__file__).resolve().parents[2]
MACHINE: dict[str, Any] = json.loads((ROOT / "statemachine" / "batch.asl.json").read_text())
CHILD: dict[str, Any] = MACHINE["States"]["Chunks"]["ItemProcessor"]
MAX_EVENTS = 25_000
EVENTS_PER_ATTEMPT = 3
EXECUTION_EVENTS = 2
# MapStateEntered, MapStateStarted, MapRunStarted, MapRunSucceeded (or Failed), MapStateSucceeded, MapStateExited.
MAP_EVENTS = 6
THROTTLED = "Lambda.TooManyRequestsException"
DAY = 24 * 3600
YEAR = 365 * DAY  # a Standard execution's longest run


def attempts(task: dict[str, Any]) -> int:
    """The most attempts one visit of a Task makes: the first, and each retrier's retries."""
    return 1 + sum(retrier.get("MaxAttempts", 3) for retrier in task.get("Retry", []))


def visit_events(state: dict[str, Any]) -> int:
    """The most events one visit of a state records."""
    if state["Type"] == "Task":
        return 2 + EVENTS_PER_ATTEMPT * attempts(state)
    if state["Type"] == "Map":
        return MAP_EVENTS
    return 2


def successors(state: dict[str, Any]) -> set[str]:
    found = {state["Next"]} if "Next" in state else set()
    found |= {choice["Next"] for choice in state.get("Choices", [])}
    found |= {catcher["Next"] for catcher in state.get("Catch", [])}
    return found | ({state["Default"]} if "Default" in state else set())


def reachable_again(states: dict[str, Any], start: str) -> bool:
    """Whether some state can be visited twice (a loop)."""
    path: list[str] = []

    def visit(name: str) -> bool:
        if name in path:
            return True
        path.append(name)
        looped = any(visit(after) for after in successors(states[name]))
        path.pop()
        return looped

    return visit(start)


def throttle_retrier(task: dict[str, Any]) -> dict[str, Any]:
    return next(retrier for retrier in task["Retry"] if THROTTLED in retrier["ErrorEquals"])


def test_the_parent_visits_each_state_once_and_stays_under_the_limit_with_every_retry_spent() -> None:
    states = MACHINE["States"]

    worst = EXECUTION_EVENTS + sum(visit_events(state) for state in states.values())

    assert not reachable_again(states, MACHINE["StartAt"])
    assert worst < MAX_EVENTS, worst


def test_a_chunk_throttled_to_the_end_of_its_retries_twice_still_fits_its_history() -> None:
    # A visit that spends every retry ends on the retrier's error, never on the history limit.
    work, done = CHILD["States"]["Work"], CHILD["States"]["Chunk done?"]
    finished = CHILD["States"]["Chunk finished"]

    worst = EXECUTION_EVENTS + visit_events(finished) + 2 * (visit_events(work) + visit_events(done))

    assert worst < MAX_EVENTS, worst


def test_throttling_fills_a_chunks_history_in_no_less_than_two_weeks() -> None:
    retrier = throttle_retrier(CHILD["States"]["Work"])
    # With full jitter a retry waits a uniform time up to its backoff, capped: on average half the cap.
    assert retrier["JitterStrategy"] == "FULL"
    mean_wait = retrier["MaxDelaySeconds"] / 2

    throttled_for = MAX_EVENTS / EVENTS_PER_ATTEMPT * mean_wait

    assert throttled_for >= 14 * DAY, f"{throttled_for / DAY:.1f} days"


def test_every_lambda_task_retries_throttling_alike() -> None:
    tasks = [s for s in [*MACHINE["States"].values(), *CHILD["States"].values()] if s["Type"] == "Task"]

    assert len({json.dumps(throttle_retrier(task), sort_keys=True) for task in tasks}) == 1


def waits_within(seconds: float) -> int:
    """How many times a worker with no share leaves and waits in `seconds` of its batch's run (worker.idle_wait)."""
    base = int(load_template(ROOT / "template.yaml")["Parameters"]["IdleWaitSeconds"]["Default"])
    waited, count = 0.0, 0
    while waited < seconds:
        waited += idle_wait(base, 0.0, waited)
        count += 1
    return count


def test_a_chunk_waiting_a_year_for_a_share_of_its_jobs_budget_fills_under_half_its_history() -> None:
    states = CHILD["States"]
    idle = states["Chunk done?"]["Choices"][1]
    wait = states[idle["Next"]]
    assert (idle["Variable"], wait["Type"], wait["SecondsPath"], wait["Next"]) == (
        "$.progress.wait", "Wait", "$.progress.wait", "Work"
    )  # fmt: skip
    # Each wait: an invocation that leaves at once (its first attempt), the Choice, the Wait.
    cycle = 2 + EVENTS_PER_ATTEMPT + visit_events(states["Chunk done?"]) + visit_events(wait)

    assert cycle == 9
    # A 24h batch's window ends its waiting; an unlimited batch's waits grow with its age.
    assert EXECUTION_EVENTS + waits_within(DAY) * cycle < MAX_EVENTS / 5
    assert EXECUTION_EVENTS + waits_within(YEAR) * cycle < MAX_EVENTS / 2
