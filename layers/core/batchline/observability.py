"""Logger, Tracer and Metrics, created once; handlers import them from here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


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


class _Unrecorded(BaseSegment):
    """The subsegment of a trace nobody records: what the handler's decorators write to it goes nowhere."""

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class Untraced(BaseProvider):
    """A Powertools tracing provider that records nothing, for when tracing is off.

    Tracer's default provider is the X-Ray SDK's recorder, imported when the Tracer is built even with
    tracing off: 60-80 ms of CPU of the api function's cold start, measured (-X importtime blames it
    for half a second, but most of that is botocore, which it happens to import first and the
    functions need anyway). Powertools takes any `BaseProvider` instead; this one keeps
    `capture_lambda_handler` and `capture_method` working, as no-ops, without the SDK.
    """

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _Unrecorded()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Unrecorded()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


# What the functions call out through to AWS. patch_all would also import and patch every other library
# the SDK knows that is installed (requests, sqlite3, httpx). The providers' HTTP client is aiohttp,
# which the SDK traces through a session's trace_configs, not a patch.
TRACED_LIBRARIES = ("botocore",)


def _tracer() -> Tracer:
    """X-Ray through Powertools where tracing is on; where it is off, a Tracer that never loads the SDK."""
    # Powertools' own rule (POWERTOOLS_TRACE_DISABLED, or not running in Lambda, or in SAM local), so
    # that on and off mean what they mean to Powertools.
    if not Tracer._is_tracer_disabled():
        return Tracer(patch_modules=TRACED_LIBRARIES)
    # Not disabled=True: that only switches the SDK's global config off, which would import the SDK;
    # this provider has nothing to switch off.
    return Tracer(provider=Untraced(), disabled=False)


tracer = _tracer()
metrics = Metrics()
