"""Step Functions' 256 KiB payload quota, where moto checks it wrongly or not at all.

Payloads are limited to 256 KiB (262,144 bytes of UTF-8 JSON) as AWS does: a state's output (moto
checked, but refused exactly 256 KiB), a task's input after Parameters (moto did not check), and a
Map's aggregated result of its children (before ResultSelector and ResultPath: `"ResultPath": null`
does not save it; moto did not check) -> `States.DataLimitExceeded`.
"""

from __future__ import annotations

import functools
from typing import Any

from localcloud.patching import Patches
from localcloud.stepfunctions_errors import execution_failure

MAX_PAYLOAD_BYTES = 256 * 1024

_patches = Patches()


def payload_bytes(value: Any) -> int:
    """Size of a value as Step Functions measures it: its JSON text in UTF-8."""
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    # Compact, as AWS renders payloads (moto's own check measures them with spaces).
    text = value if isinstance(value, str) else to_json_str(value, separators=(",", ":"))
    return len(text.encode("utf-8"))


def within_quota(value: Any) -> bool:
    """AWS allows a payload of exactly 256 KiB; moto's own check refuses it."""
    return payload_bytes(value) <= MAX_PAYLOAD_BYTES


def data_limit_exceeded(env: Any, what: str, size: int) -> Exception:
    """The failure AWS raises for an oversized payload."""
    cause = (
        f"{what} has a size of {size} bytes, exceeding the maximum number of bytes service limit ({MAX_PAYLOAD_BYTES})."
    )
    return execution_failure(env, "StatesStatesDataLimitExceeded", cause)


def _task_input_checked(original: Any) -> Any:
    """StateTaskService._before_eval_execution: a task's input after Parameters is a payload too."""

    @functools.wraps(original)
    def _before_eval_execution(
        self: Any, env: Any, resource_runtime_part: Any, raw_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        size = payload_bytes(raw_parameters)
        if size > MAX_PAYLOAD_BYTES:
            raise data_limit_exceeded(env, f"The input of state '{self.name}' after Parameters", size)
        original(self, env, resource_runtime_part, raw_parameters, state_credentials)

    return _before_eval_execution


def _map_result_checked(original: Any) -> Any:
    """StateMap._eval_execution: the children's outputs, before ResultSelector and ResultPath, are one payload."""

    @functools.wraps(original)
    def _eval_execution(self: Any, env: Any) -> None:
        original(self, env)
        size = payload_bytes(env.stack[-1])
        if size > MAX_PAYLOAD_BYTES:
            raise data_limit_exceeded(env, f"The result of Map state '{self.name}'", size)

    return _eval_execution


def install() -> None:
    """Apply the payload quota as AWS does (idempotent)."""
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    with _patches.lock:
        for module in (state, state_task_lambda, state_task_service):
            _patches.patch(module, "is_within_size_quota", lambda _: within_quota)
        _patches.patch(state_task_service.StateTaskService, "_before_eval_execution", _task_input_checked)
        _patches.patch(StateMap, "_eval_execution", _map_result_checked)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
