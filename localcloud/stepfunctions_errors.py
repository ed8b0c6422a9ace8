"""The States.* errors as AWS raises them, and the two that `States.ALL` does not catch.

`States.ALL` (and `States.TaskFailed`) neither retry nor catch `States.DataLimitExceeded` or
`States.Runtime`, as AWS documents: those fail the execution unless a Retrier/Catcher names them. moto's
interpreter let `States.ALL` match them too.
"""

from __future__ import annotations

import functools
from typing import Any

from localcloud.patching import Patches

TERMINAL_ERRORS = ("States.DataLimitExceeded", "States.Runtime")

_patches = Patches()


def execution_failure(env: Any, error: str, cause: str) -> Exception:
    """A FailureEventException that fails the execution with a States.* error, as AWS raises it."""
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error_type = getattr(StatesErrorNameType, error)
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error_type),
            event_type=HistoryEventType.ExecutionFailed,
            # moto's EventDetails is a total TypedDict; each event carries one of its members, as moto builds it.
            event_details=EventDetails(  # type: ignore[typeddict-item]
                executionFailedEventDetails=ExecutionFailedEventDetails(error=error_type.to_name(), cause=cause)
            ),
        )
    )


def _terminal_unless_named(original: Any) -> Any:
    """ErrorEqualsDecl._eval_body: a terminal error matches only a Retrier or Catcher that names it."""
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        terminal = isinstance(error_name, StatesErrorName) and error_name.error_name in TERMINAL_ERRORS
        if terminal and error_name not in self.error_names:
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    return _eval_body


def install() -> None:
    """Match errors as AWS does (idempotent)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

    with _patches.lock:
        _patches.patch(ErrorEqualsDecl, "_eval_body", _terminal_unless_named)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
