"""Each invocation logs with its own function's Lambda context, also when several run in one process.

On Lambda one invocation runs at a time per process; the local cloud runs every function in one
process, in threads, so a process-wide logger state would lend one function's context to another's
log lines. The two invocations below are interleaved deliberately: both have set their context
before either logs.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from batchline.observability import logger
from localcloud.lambda_runtime import LambdaContext


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_concurrent_invocations_each_log_with_their_own_context() -> None:
    both_set = threading.Barrier(2, timeout=10)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.append_keys(batch_id=event["batch_id"])
        both_set.wait()  # the other invocation has injected its context too
        logger.info("working")

    lines = Lines()
    lines.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(lines)
    try:
        threads = [
            threading.Thread(
                target=handler,
                args=(
                    {"batch_id": f"batch-{name}"},
                    LambdaContext.called_directly(name, request_id=f"request-of-{name}"),
                ),
            )
            for name in ("plan", "worker")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        logger._logger.removeHandler(lines)

    seen = sorted((line["function_name"], line["function_request_id"], line["batch_id"]) for line in lines.lines)
    assert seen == [("plan", "request-of-plan", "batch-plan"), ("worker", "request-of-worker", "batch-worker")]
    assert all(line["service"] == "batchline" for line in lines.lines)


def test_keys_set_at_import_reach_every_invocation() -> None:
    lines = Lines()
    lines.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(lines)
    try:
        thread = threading.Thread(target=logger.info, args=("from a fresh thread",))
        thread.start()
        thread.join(timeout=10)
    finally:
        logger._logger.removeHandler(lines)
    assert [(line["message"], line["service"], line["level"]) for line in lines.lines] == [
        ("from a fresh thread", "batchline", "INFO")
    ]
