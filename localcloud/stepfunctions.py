"""Make moto's Step Functions interpreter fail what AWS Step Functions fails.

moto's ASL interpreter (moto/stepfunctions/parser, from LocalStack) runs the real state machine, but it
is lenient where AWS is not. `install()` patches it, `uninstall()` restores it; LocalCloud does both:

- A failed child of a Distributed Map fails the Map with `States.ExceedToleratedFailureThreshold`
  (AWS's default tolerance is zero failed items); moto counted it and let the Map succeed with a null.
  Tolerance is honoured: the Map fails once the failed (or timed-out) items exceed ToleratedFailureCount
  and their share exceeds ToleratedFailurePercentage (each defaults to 0). AWS fails when either one is
  exceeded; with both declared this is more lenient than AWS, which the product does not use.
  An inline Map already propagates its child's error.
- Payloads are limited to 256 KiB (262,144 bytes of UTF-8 JSON) as AWS does: a state's output (moto
  checked, but refused exactly 256 KiB), a task's input after Parameters (moto did not check), and a
  Map's aggregated result of its children (before ResultSelector and ResultPath: `"ResultPath": null`
  does not save it; moto did not check) -> `States.DataLimitExceeded`.
- `States.ALL` (and `States.TaskFailed`) neither retry nor catch `States.DataLimitExceeded` or
  `States.Runtime`, as AWS documents: those fail the execution unless a Retrier/Catcher names them.
- An execution's history holds at most 25,000 events, as AWS's does: once it has 24,999, the next event
  must be its end (ExecutionSucceeded); any other fails it with `States.Runtime`, its ExecutionFailed the
  25,000th event. moto kept every history unbounded. Events are moto's (LocalStack's, which follow
  AWS's: entered and exited per state, scheduled, started and succeeded or failed per task attempt). A
  Distributed Map child is an execution of its own on AWS, its history its own: here each child counts
  its own events, its ExecutionStarted included (moto pooled all children's events in one list).
- Every state entered (Map children included) and every retry attempt is counted as a state
  transition, as AWS bills Standard workflows (localcloud.metering).
- moto's interpreter built a new boto3 client for every Task and ItemReader it ran (about 10 ms of CPU
  and a new client class each); the clients, all signed alike, are made once per service, region and
  moto endpoint and reused, as a service keeps its connections.
- ASL Retry really sleeps in moto. `retry_interval_scale` (default 1, as AWS) multiplies every retry
  interval, so tests can run long retry policies quickly; it is explicit, never implied.
- A Wait state really waits in moto too. `wait_scale` (default 1, as AWS) multiplies every wait, whether
  from Seconds, SecondsPath or a timestamp; 0 skips it. moto measured what it had waited in whole seconds
  against what it was asked, and waited the rest again: a scaled wait is measured against its scaled length.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from localcloud import metering
from localcloud.iam import STEP_FUNCTIONS_ACCESS_KEY

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 256 * 1024
# Connections the interpreter's shared client of a service keeps (urllib3 drops, and warns about, any beyond).
POOLED_CONNECTIONS = 100
TERMINAL_ERRORS = ("States.DataLimitExceeded", "States.Runtime")
TOLERATED_FAILURE_CAUSE = "The specified tolerated failure threshold was exceeded"
MAX_HISTORY_EVENTS = 25_000
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
# The events that may take a history's last place: the execution's end.
CLOSING_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed"})

_lock = threading.RLock()
# (owner, attribute name) -> the original attribute, for uninstall.
_originals: dict[tuple[Any, str], Any] = {}
_retry_interval_scale = 1.0
_wait_scale = 1.0


def payload_bytes(value: Any) -> int:
    """Size of a value as Step Functions measures it: its JSON text in UTF-8."""
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    # Compact, as AWS renders payloads (moto's own check measures them with spaces).
    text = value if isinstance(value, str) else to_json_str(value, separators=(",", ":"))
    return len(text.encode("utf-8"))


def within_quota(value: Any) -> bool:
    """AWS allows a payload of exactly 256 KiB; moto's own check refuses it."""
    return payload_bytes(value) <= MAX_PAYLOAD_BYTES


def _execution_failure(env: Any, error: str, cause: str) -> Exception:
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
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(error=error_type.to_name(), cause=cause)
            ),
        )
    )


def data_limit_exceeded(env: Any, what: str, size: int) -> Exception:
    """The failure AWS raises for an oversized payload."""
    cause = (
        f"{what} has a size of {size} bytes, exceeding the maximum number of bytes service limit ({MAX_PAYLOAD_BYTES})."
    )
    return _execution_failure(env, "StatesStatesDataLimitExceeded", cause)


def tolerated_failure_exceeded(env: Any) -> Exception:
    """The failure a Distributed Map raises once too many of its children failed."""
    return _execution_failure(env, "StatesExceedToleratedFailureThreshold", TOLERATED_FAILURE_CAUSE)


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


def _keep_history(events: Any, execution: Any) -> None:
    with _lock:
        _histories[events] = _History(execution)


def exceeds_tolerance(failed: int, total: int, tolerated_count: int, tolerated_percentage: float) -> bool:
    """Whether `failed` of `total` items exceed the tolerance (see the module docstring)."""
    percentage = 100.0 * failed / total if total else 0.0
    return failed > tolerated_count and percentage > tolerated_percentage


# ----------------------------------------------------------------------------------------- patches
def _patch(owner: Any, name: str, replacement: Any) -> None:
    key = (owner, name)
    if key not in _originals:
        _originals[key] = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, replacement)


def _patch_error_matching() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    original = _originals.get((ErrorEqualsDecl, "_eval_body")) or ErrorEqualsDecl._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        terminal = isinstance(error_name, StatesErrorName) and error_name.error_name in TERMINAL_ERRORS
        if terminal and error_name not in self.error_names:
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    _patch(ErrorEqualsDecl, "_eval_body", _eval_body)


def _patch_size_quotas() -> None:
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    for module in (state, state_task_lambda, state_task_service):
        _patch(module, "is_within_size_quota", within_quota)

    service = state_task_service.StateTaskService
    before = _originals.get((service, "_before_eval_execution")) or service._before_eval_execution

    def _before_eval_execution(
        self: Any, env: Any, resource_runtime_part: Any, raw_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        size = payload_bytes(raw_parameters)
        if size > MAX_PAYLOAD_BYTES:
            raise data_limit_exceeded(env, f"The input of state '{self.name}' after Parameters", size)
        before(self, env, resource_runtime_part, raw_parameters, state_credentials)

    _patch(service, "_before_eval_execution", _before_eval_execution)


def _patch_map_aggregate() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap

    original = _originals.get((StateMap, "_eval_execution")) or StateMap._eval_execution

    def _eval_execution(self: Any, env: Any) -> None:
        original(self, env)
        # The children's outputs, before ResultSelector and ResultPath: the limit applies to them.
        size = payload_bytes(env.stack[-1])
        if size > MAX_PAYLOAD_BYTES:
            raise data_limit_exceeded(env, f"The result of Map state '{self.name}'", size)

    _patch(StateMap, "_eval_execution", _eval_execution)


def _patch_distributed_child_failure() -> None:
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker_module,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

    worker_class = worker_module.DistributedItemProcessorWorker

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        # moto's own version, except that a failed item counts against the Map's tolerance, and that the
        # child keeps a history of its own (frames opened from here on take its event manager).
        record = self._map_run_record
        record.item_counter.total.count()
        record.item_counter.running.count()
        record.execution_counter.total.count()
        record.execution_counter.running.count()
        job_output: Any = None
        failed = False
        env.event_manager = EventManager()
        _keep_history(env.event_manager, env)
        try:
            env.event_manager.add_event(
                context=env.event_history_context,
                event_type=HistoryEventType.ExecutionStarted,
                update_source_event_id=False,
            )
            env.states.context_object.context_object_data["Map"] = MapData(
                Item=ItemData(Index=job.job_index, Value=job.job_input)
            )
            env.states.reset(job.job_input)
            env.stack.append(env.states.get_input())
            self._eval_input(env_frame=env)
            job.job_program.eval(env)
            end_state = env.program_state()
            if isinstance(end_state, ProgramError):
                record.execution_counter.failed.count()
                record.item_counter.failed.count()
                failed = True
            elif isinstance(end_state, ProgramStopped):
                record.execution_counter.aborted.count()
                record.item_counter.aborted.count()
            else:
                record.item_counter.succeeded.count()
                record.item_counter.results_written.count()
                record.execution_counter.succeeded.count()
                record.execution_counter.results_written.count()
                record.execution_counter.running.offset(-1)
                job_output = env.states.get_input()
        except EvalTimeoutError:
            record.item_counter.timed_out.count()
            failed = True
        except Exception:
            log.debug("Map item %s failed", job.job_index, exc_info=True)
            record.item_counter.failed.count()
            failed = True
        finally:
            record.item_counter.running.offset(-1)
        if failed:
            counter = record.item_counter
            unsuccessful = counter.failed.get() + counter.timed_out.get()
            total = self._job_pool._jobs_number
            if exceeds_tolerance(
                unsuccessful, total, record.tolerated_failure_count, record.tolerated_failure_percentage
            ):
                # An exception as the job's output makes the job pool stop and the Map raise it.
                job_output = tolerated_failure_exceeded(env)
        job.job_output = job_output

    _patch(worker_class, "_eval_job", _eval_job)


def _patch_history_limit() -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    add = _originals.get((EventManager, "add_event")) or EventManager.add_event
    environment = (
        _originals.get((ExecutionWorker, "_get_evaluation_environment")) or ExecutionWorker._get_evaluation_environment
    )

    def _get_evaluation_environment(self: Any) -> Any:
        env = environment(self)
        _keep_history(env.event_manager, env)
        return env

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
            return int(add(self, context, event_type, event_details, timestamp, update_source_event_id))
        with history.lock:
            if history.recorded >= MAX_HISTORY_EVENTS:
                # Its last event is written (its end, or the ExecutionFailed below): nothing follows it.
                return int(context.last_published_event_id)
            admitted = history_admits(history.recorded, event_type)
            # A refused event's place is the ExecutionFailed's, written below.
            history.recorded += 1
        if admitted:
            return int(add(self, context, event_type, event_details, timestamp, update_source_event_id))
        details = ExecutionFailedEventDetails(error="States.Runtime", cause=HISTORY_LIMIT_CAUSE)
        add(self, context, HistoryEventType.ExecutionFailed, EventDetails(executionFailedEventDetails=details))
        # Raised where the event was to be written, so the state that wrote it goes no further.
        failure = _execution_failure(history.execution, "StatesRuntime", HISTORY_LIMIT_CAUSE)
        # AWS's cause names no state; moto would prefix the state's to any States.Runtime.
        failure.get_execution_failed_event_details = lambda: details  # type: ignore[attr-defined]
        raise failure

    _patch(ExecutionWorker, "_get_evaluation_environment", _get_evaluation_environment)
    _patch(EventManager, "add_event", add_event)


def _patch_transition_count() -> None:
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl
    from moto.stepfunctions.parser.asl.component.common.retry.retrier_outcome import RetrierOutcome
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    entered = _originals.get((CommonStateField, "_eval_body")) or CommonStateField._eval_body
    retried = _originals.get((RetrierDecl, "_eval_body")) or RetrierDecl._eval_body

    def _state_eval_body(self: Any, env: Any) -> None:
        metering.state_transition(self.name)
        entered(self, env)

    def _retrier_eval_body(self: Any, env: Any) -> None:
        retried(self, env)
        if env.stack and env.stack[-1] == RetrierOutcome.Executed:
            metering.state_transition(env.states.context_object.context_object_data["State"]["Name"])

    _patch(CommonStateField, "_eval_body", _state_eval_body)
    _patch(RetrierDecl, "_eval_body", _retrier_eval_body)


def _patch_client_reuse() -> None:
    import sys

    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = _originals.get((boto_client, "boto_client_for")) or boto_client.boto_client_for
    clients: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        import boto3
        from botocore.config import Config
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

        key = (region, service, moto_server_port(), botocore_stubber.enabled)
        with lock:
            if key not in clients:
                # As moto builds it, with connections enough for every Map child in flight at once.
                endpoint = (
                    {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{moto_server_port()}"}
                )
                # moto's own fake keys: localcloud.iam tells the state machine's calls by this access key.
                clients[key] = boto3.client(
                    aws_access_key_id=STEP_FUNCTIONS_ACCESS_KEY, aws_secret_access_key="sk",  # noqa: S106
                    region_name=region, service_name=service,
                    config=Config(
                        parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=POOLED_CONNECTIONS,
                    ),
                    **endpoint,
                )  # fmt: skip
            return clients[key]

    del lambda_eval_utils, resource_eval_s3  # imported so that they are in sys.modules below
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is original:
            _patch(module, "boto_client_for", boto_client_for)


class _ScaledTime:
    """Stands in for the `time` module where moto's retrier sleeps."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds * _retry_interval_scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _patch_retry_sleep() -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    real = _originals.get((retrier_decl, "time")) or retrier_decl.time
    _patch(retrier_decl, "time", _ScaledTime(real))


def _patch_wait() -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        # Until the scaled time is up, or the execution ends (a stop or a failure wakes the wait).
        ends = time.monotonic() + wait_seconds * _wait_scale
        while env.is_running() and (left := ends - time.monotonic()) > 0:
            env.program_state_event.wait(left)

    _patch(WaitFunction, "_wait_interval", _wait_interval)


# ---------------------------------------------------------------------------------------- lifecycle
def install(*, retry_interval_scale: float = 1.0, wait_scale: float = 1.0) -> None:
    """Patch moto's ASL interpreter to AWS's behaviour (idempotent; the scales are updated)."""
    global _retry_interval_scale, _wait_scale
    if retry_interval_scale < 0 or wait_scale < 0:
        raise ValueError("retry_interval_scale and wait_scale must not be negative")
    with _lock:
        _retry_interval_scale = retry_interval_scale
        _wait_scale = wait_scale
        if _originals:
            return
        _patch_error_matching()
        _patch_size_quotas()
        _patch_map_aggregate()
        _patch_distributed_child_failure()
        _patch_history_limit()
        _patch_retry_sleep()
        _patch_wait()
        _patch_transition_count()
        _patch_client_reuse()


def uninstall() -> None:
    """Restore moto's own behaviour."""
    global _retry_interval_scale, _wait_scale
    with _lock:
        for (owner, name), original in reversed(list(_originals.items())):
            setattr(owner, name, original)
        _originals.clear()
        _retry_interval_scale = 1.0
        _wait_scale = 1.0
