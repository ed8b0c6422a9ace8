"""Make moto's Step Functions interpreter fail what AWS Step Functions fails, and count what AWS bills.

moto's ASL interpreter (moto/stepfunctions/parser, from LocalStack) runs the real state machine, but it
is lenient where AWS is not. `install()` patches it, `uninstall()` restores it; LocalCloud does both.
Each of AWS's behaviours is a module of its own:

- localcloud.stepfunctions_map: a Distributed Map fails once its children's failures exceed its tolerance.
- localcloud.stepfunctions_payloads: the 256 KiB payload quota -> `States.DataLimitExceeded`.
- localcloud.stepfunctions_errors: `States.ALL` neither retries nor catches `States.DataLimitExceeded` or
  `States.Runtime`.
- localcloud.stepfunctions_history: an execution's history holds at most 25,000 events.
- localcloud.speed.stepfunctions: the interpreter's clients made once (a speed fix only).

Here:
- Every state entered (Map children included) and every retry attempt is counted as a state
  transition, as AWS bills Standard workflows (localcloud.metering).
- ASL Retry really sleeps in moto. `retry_interval_scale` (default 1, as AWS) multiplies every retry
  interval, so tests can run long retry policies quickly; it is explicit, never implied.
- A Wait state really waits in moto too. `wait_scale` (default 1, as AWS) multiplies every wait, whether
  from Seconds, SecondsPath or a timestamp; 0 skips it. moto measured what it had waited in whole seconds
  against what it was asked, and waited the rest again: a scaled wait is measured against its scaled length.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from localcloud import (
    metering,
    stepfunctions_errors,
    stepfunctions_history,
    stepfunctions_map,
    stepfunctions_payloads,
)
from localcloud.patching import Patches
from localcloud.speed import stepfunctions as fast_stepfunctions

# Installed in this order, removed in the reverse one.
BEHAVIOURS = (
    stepfunctions_errors,
    stepfunctions_payloads,
    stepfunctions_map,
    stepfunctions_history,
    fast_stepfunctions,
)

_patches = Patches()


class _Scales:
    """What the retrier's sleeps and the Wait states' waits are multiplied by (1: as on AWS)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retry_interval = 1.0
        self.wait = 1.0


_scales = _Scales()


class _ScaledTime:
    """Stands in for the `time` module where moto's retrier sleeps."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds * _scales.retry_interval)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _scaled_wait(_moto_wait_interval: Any) -> Any:
    """WaitFunction._wait_interval, replaced whole: moto's waited whole seconds and then the rest again."""

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        # Until the scaled time is up, or the execution ends (a stop or a failure wakes the wait).
        ends = time.monotonic() + wait_seconds * _scales.wait
        while env.is_running() and (left := ends - time.monotonic()) > 0:
            env.program_state_event.wait(left)

    return _wait_interval


def _counted_on_entry(original: Any) -> Any:
    """CommonStateField._eval_body: entering a state is a transition."""

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        metering.state_transition(self.name)
        original(self, env)

    return _eval_body


def _counted_on_retry(original: Any) -> Any:
    """RetrierDecl._eval_body: a retry attempt is a transition of the state retried."""
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_outcome import RetrierOutcome

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        original(self, env)
        if env.stack and env.stack[-1] == RetrierOutcome.Executed:
            metering.state_transition(env.states.context_object.context_object_data["State"]["Name"])

    return _eval_body


def install(*, retry_interval_scale: float = 1.0, wait_scale: float = 1.0) -> None:
    """Patch moto's ASL interpreter to AWS's behaviour (idempotent; the scales are updated)."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    if retry_interval_scale < 0 or wait_scale < 0:
        raise ValueError("retry_interval_scale and wait_scale must not be negative")
    with _scales.lock:
        _scales.retry_interval = retry_interval_scale
        _scales.wait = wait_scale
    for behaviour in BEHAVIOURS:
        behaviour.install()
    with _patches.lock:
        _patches.patch(retrier_decl, "time", _ScaledTime)
        _patches.patch(WaitFunction, "_wait_interval", _scaled_wait)
        _patches.patch(CommonStateField, "_eval_body", _counted_on_entry)
        _patches.patch(retrier_decl.RetrierDecl, "_eval_body", _counted_on_retry)


def uninstall() -> None:
    """Restore moto's own behaviour."""
    with _patches.lock:
        _patches.undo()
    for behaviour in reversed(BEHAVIOURS):
        behaviour.uninstall()
    with _scales.lock:
        _scales.retry_interval = 1.0
        _scales.wait = 1.0
