"""An execution's history of at most 25,000 events, as AWS keeps it; moto kept every history unbounded.

Once a history has 24,999 events, the next must be its end (ExecutionSucceeded); any other fails the
execution with `States.Runtime`, its ExecutionFailed the 25,000th event. Events are moto's (LocalStack's,
which follow AWS's: entered and exited per state, scheduled, started and succeeded or failed per task
attempt). A Distributed Map child is an execution of its own on AWS, its history its own: the Map
(localcloud.stepfunctions_map) gives each child a history here, which counts its own events, its
ExecutionStarted included (moto pooled all children's events in one list).
"""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from localcloud.patching import Patches
from localcloud.stepfunctions_errors import execution_failure

MAX_HISTORY_EVENTS = 25_000
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
# The events that may take a history's last place: the execution's end.
CLOSING_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed"})

_patches = Patches()


def history_admits(recorded: int, event_type: str) -> bool:
    """Whether a history of `recorded` events takes one more `event_type`: its last place is for its end."""
    if recorded < MAX_HISTORY_EVENTS - 1:
        return True
    return recorded == MAX_HISTORY_EVENTS - 1 and event_type in CLOSING_EVENTS


@dataclass
class _History:
    """The history of one execution (a Distributed Map child is one): whom it fails, how long it is."""

    execution: Any  # the execution's Environment (a child's is its job frame)
    recorded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


# moto's EventManager of each execution -> its history.
_histories: weakref.WeakKeyDictionary[Any, _History] = weakref.WeakKeyDictionary()
_histories_lock = threading.Lock()


def keep_history(events: Any, execution: Any) -> None:
    """Count the events `events` (an EventManager) records as the history of `execution`."""
    with _histories_lock:
        _histories[events] = _History(execution)


def _counted_from_start(original: Any) -> Any:
    """ExecutionWorker._get_evaluation_environment: each execution's events are counted from its start."""

    @functools.wraps(original)
    def _get_evaluation_environment(self: Any) -> Any:
        env = original(self)
        keep_history(env.event_manager, env)
        return env

    return _get_evaluation_environment


def _bounded(original: Any) -> Any:
    """EventManager.add_event: the 25,000th event is the execution's end, or its failure."""
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    @functools.wraps(original)
    def add_event(
        self: Any,
        context: Any,
        event_type: Any,
        event_details: Any = None,
        timestamp: Any = None,
        update_source_event_id: bool = True,
    ) -> int:
        history = _histories.get(self)
        if history is None:
            return int(original(self, context, event_type, event_details, timestamp, update_source_event_id))
        with history.lock:
            if history.recorded >= MAX_HISTORY_EVENTS:
                # Its last event is written (its end, or the ExecutionFailed below): nothing follows it.
                return int(context.last_published_event_id)
            admitted = history_admits(history.recorded, event_type)
            # A refused event's place is the ExecutionFailed's, written below.
            history.recorded += 1
        if admitted:
            return int(original(self, context, event_type, event_details, timestamp, update_source_event_id))
        details = ExecutionFailedEventDetails(error="States.Runtime", cause=HISTORY_LIMIT_CAUSE)
        # moto's EventDetails is a total TypedDict; each event carries one of its members, as moto builds it.
        failed = EventDetails(executionFailedEventDetails=details)  # type: ignore[typeddict-item]
        original(self, context, HistoryEventType.ExecutionFailed, failed)
        # Raised where the event was to be written, so the state that wrote it goes no further.
        failure = execution_failure(history.execution, "StatesRuntime", HISTORY_LIMIT_CAUSE)
        # AWS's cause names no state; moto would prefix the state's to any States.Runtime.
        failure.get_execution_failed_event_details = lambda: details  # type: ignore[attr-defined]
        raise failure

    return add_event


def install() -> None:
    """Bound every execution's history (idempotent)."""
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    with _patches.lock:
        _patches.patch(ExecutionWorker, "_get_evaluation_environment", _counted_from_start)
        _patches.patch(EventManager, "add_event", _bounded)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
