"""Logger, Tracer and Metrics, created once; handlers import them from here."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter


class InvocationFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter whose keys belong to the running invocation, not to the process.

    The keys `inject_lambda_context` and `append_keys` set live in one dict of the formatter. On
    Lambda one invocation runs at a time per process, so that is the same thing; where several run in
    one process at once (the local cloud runs every function in-process, each invocation in a thread
    of its own), each execution context gets its own dict, starting from the keys set at import
    (service, sampling rate), so no line carries another invocation's Lambda context.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._keys: ContextVar[dict[str, Any]] = ContextVar(f"batchline_log_keys_{id(self)}")
        self._initial: dict[str, Any] = {}
        super().__init__(**kwargs)

    @property
    def log_format(self) -> dict[str, Any]:
        try:
            return self._keys.get()
        except LookupError:
            keys = dict(self._initial)
            self._keys.set(keys)
            return keys

    @log_format.setter
    def log_format(self, value: dict[str, Any]) -> None:
        self._keys.set(value)

    def seal(self) -> None:
        """Make the keys set so far (at import) where every execution context starts."""
        self._initial = dict(self.log_format)


_formatter = InvocationFormatter()
logger = Logger(logger_formatter=_formatter)
_formatter.seal()
tracer = Tracer()
metrics = Metrics()
