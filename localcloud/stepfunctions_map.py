"""A Distributed Map fails as AWS fails it: once more of its children fail than it tolerates.

A failed child of a Distributed Map fails the Map with `States.ExceedToleratedFailureThreshold` (AWS's
default tolerance is zero failed items); moto counted it and let the Map succeed with a null. Tolerance
is honoured: the Map fails once the failed (or timed-out) items exceed ToleratedFailureCount and their
share exceeds ToleratedFailurePercentage (each defaults to 0). AWS fails when either one is exceeded;
with both declared this is more lenient than AWS, which the product does not use. An inline Map already
propagates its child's error. Each child is an execution with a history of its own
(localcloud.stepfunctions_history), as on AWS.
"""

from __future__ import annotations

import logging
from typing import Any

from localcloud.patching import Patches
from localcloud.stepfunctions_errors import execution_failure
from localcloud.stepfunctions_history import keep_history

log = logging.getLogger(__name__)

TOLERATED_FAILURE_CAUSE = "The specified tolerated failure threshold was exceeded"

_patches = Patches()


def exceeds_tolerance(failed: int, total: int, tolerated_count: int, tolerated_percentage: float) -> bool:
    """Whether `failed` of `total` items exceed the tolerance (see the module docstring)."""
    percentage = 100.0 * failed / total if total else 0.0
    return failed > tolerated_count and percentage > tolerated_percentage


def tolerated_failure_exceeded(env: Any) -> Exception:
    """The failure a Distributed Map raises once too many of its children failed."""
    return execution_failure(env, "StatesExceedToleratedFailureThreshold", TOLERATED_FAILURE_CAUSE)


def _tolerant(_moto_eval_job: Any) -> Any:
    """DistributedItemProcessorWorker._eval_job, replaced whole: moto's gives a failed child no say."""
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

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
        keep_history(env.event_manager, env)
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

    return _eval_job


def install() -> None:
    """Fail a Distributed Map on its children's failures (idempotent)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker_module,
    )

    with _patches.lock:
        _patches.patch(worker_module.DistributedItemProcessorWorker, "_eval_job", _tolerant)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
