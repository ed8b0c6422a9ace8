"""What the local cloud did, in the units AWS bills: API calls, state transitions, Lambda invocations.

Counted where the local cloud sees them, for the whole process (one LocalCloud per process):

- AWS API calls, by caller, service and operation, at the botocore hook every call in this process
  passes (localcloud.iam): the caller is the function whose role the call runs under, the state
  machine for the calls of Step Functions' own service integrations (a Task's lambda:invoke, a Map's
  ItemReader S3 read), or "unattributed" (the local cloud's set-up, a test or benchmark calling moto
  itself). One call is one `_make_api_call`: botocore's own retries of it are not counted apart.
  Calls moto makes inside itself (an S3 notification sent to SQS, SQS or a stream invoking a function)
  are not API calls on AWS either; the invocations they cause are counted below.
- Step Functions state transitions: every state entered, Map children included, and every retry
  attempt (AWS bills each of them for Standard workflows), by state name (localcloud.stepfunctions).
- Lambda invocations by function (logical id): how many, billed duration (each rounded up to 1 ms, as
  Lambda bills) and the function's configured memory. The api function counts one invocation per HTTP
  request uvicorn serves for it, as API Gateway invokes it per request. Also the most of each function
  running at once since the last `reset()`: not billed, but this one process holds what they all hold.
- DynamoDB capacity units (localcloud.capacity), when a meter is given (`meter_dynamodb`; the local cloud
  gives its own): total RCU and WCU, and the highest units one partition key consumed in one second.

`snapshot()` gives plain data; a measurement takes one before and one after and subtracts (`difference`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.capacity import Meter

_lock = threading.Lock()
_calls: Counter[tuple[str, str, str]] = Counter()
_transitions: Counter[str] = Counter()
_invocations: Counter[str] = Counter()
_billed_ms: Counter[str] = Counter()
_memory_mb: dict[str, int] = {}
# Invocations of each function running now, and the most at once since the last reset: on AWS each
# has a sandbox of its own, here they share one process, whose memory grows with how many run together.
_running: Counter[str] = Counter()
_most_at_once: Counter[str] = Counter()
# The meter of DynamoDB capacity units whose figures snapshots carry (the local cloud's own), if any.
_capacity: Meter | None = None

UNATTRIBUTED = "unattributed"


def api_call(caller: str, service: str, operation: str) -> None:
    """Count one AWS API call made by `caller`."""
    with _lock:
        _calls[(caller, service, operation)] += 1


def state_transition(state: str) -> None:
    """Count one state transition (a state entered, or a retry attempt of it)."""
    with _lock:
        _transitions[state] += 1


def invoked(function: str, memory_mb: int, elapsed_seconds: float) -> None:
    """Count one invocation of `function` that ran `elapsed_seconds`."""
    billed = max(1, math.ceil(elapsed_seconds * 1000))
    with _lock:
        _invocations[function] += 1
        _billed_ms[function] += billed
        _memory_mb[function] = memory_mb


@contextlib.contextmanager
def running(function: str) -> Iterator[None]:
    """One invocation of `function` runs for the duration of the block."""
    with _lock:
        _running[function] += 1
        _most_at_once[function] = max(_most_at_once[function], _running[function])
    try:
        yield
    finally:
        with _lock:
            _running[function] -= 1


def meter_dynamodb(meter: Meter | None) -> None:
    """Report `meter`'s DynamoDB capacity units in snapshots (None: none, every figure zero)."""
    global _capacity  # one process, one local cloud: its meter, as the counters above
    with _lock:
        _capacity = meter


def _dynamodb_capacity_none() -> dict[str, Any]:
    return {"totals": {"rcu": 0.0, "wcu": 0.0}, "peaks": {"rcu": None, "wcu": None}}


def _dynamodb_capacity() -> dict[str, Any]:
    if _capacity is None:
        return _dynamodb_capacity_none()
    peaks = _capacity.peaks()
    return {
        "totals": _capacity.totals(),
        "peaks": {kind: None if peak is None else asdict(peak) for kind, peak in peaks.items()},
    }


def reset() -> None:
    """Forget everything counted (the most at once restarts from those running now)."""
    with _lock:
        if _capacity is not None:
            _capacity.reset()
        for counter in (_calls, _transitions, _invocations, _billed_ms):
            counter.clear()
        _memory_mb.clear()
        _most_at_once.clear()
        _most_at_once.update(+_running)


def snapshot() -> dict[str, Any]:
    """Everything counted so far, as plain data (JSON-ready)."""
    with _lock:
        calls: dict[str, dict[str, dict[str, int]]] = {}
        for (caller, service, operation), count in sorted(_calls.items()):
            calls.setdefault(caller, {}).setdefault(service, {})[operation] = count
        return {
            "api_calls": calls,
            "state_transitions": dict(sorted(_transitions.items())),
            "lambda": {
                name: {"invocations": _invocations[name], "billed_ms": _billed_ms[name], "memory_mb": _memory_mb[name]}
                for name in sorted(_invocations)
            },
            "most_at_once": dict(sorted((+_most_at_once).items())),
            "dynamodb_capacity": _dynamodb_capacity(),
        }


def difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What was counted between two snapshots (zero counts left out)."""
    calls: dict[str, dict[str, dict[str, int]]] = {}
    for caller, services in after["api_calls"].items():
        for service, operations in services.items():
            for operation, count in operations.items():
                done = count - before["api_calls"].get(caller, {}).get(service, {}).get(operation, 0)
                if done:
                    calls.setdefault(caller, {}).setdefault(service, {})[operation] = done
    transitions = {
        state: count - before["state_transitions"].get(state, 0)
        for state, count in after["state_transitions"].items()
        if count - before["state_transitions"].get(state, 0)
    }
    functions: dict[str, dict[str, int]] = {}
    for name, usage in after["lambda"].items():
        earlier = before["lambda"].get(name, {"invocations": 0, "billed_ms": 0})
        if usage["invocations"] - earlier["invocations"]:
            functions[name] = {
                "invocations": usage["invocations"] - earlier["invocations"],
                "billed_ms": usage["billed_ms"] - earlier["billed_ms"],
                "memory_mb": usage["memory_mb"],
            }
    capacity = after.get("dynamodb_capacity", _dynamodb_capacity_none())
    units_before = before.get("dynamodb_capacity", _dynamodb_capacity_none())["totals"]
    # A high-water mark does not subtract: the window's is the one since the last reset (most at once, and
    # the peak units of a partition key in a second).
    return {
        "api_calls": calls,
        "state_transitions": transitions,
        "lambda": functions,
        "most_at_once": after.get("most_at_once", {}),
        "dynamodb_capacity": {
            "totals": {kind: units - units_before.get(kind, 0.0) for kind, units in capacity["totals"].items()},
            "peaks": capacity["peaks"],
        },
    }


class Invocations:
    """ASGI middleware: each HTTP request `app` serves is one invocation of `function` (API Gateway's proxy)."""

    def __init__(self, app: Any, function: str, memory_mb: int) -> None:
        self.app = app
        self.function = function
        self.memory_mb = memory_mb

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        try:
            with running(self.function):
                await self.app(scope, receive, send)
        finally:
            invoked(self.function, self.memory_mb, time.monotonic() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)
