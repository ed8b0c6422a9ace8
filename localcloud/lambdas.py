"""Run moto's Lambda invocations in-process through the functions' real handlers.

moto funnels every invocation (the Invoke API, Step Functions tasks, SQS and S3 triggers) through
`moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)`, which
normally starts a Docker container. `install()` replaces it with `invoke()`: import the handler by file
path and call it in the calling thread.

Environment variables: a handler reads its configuration from `os.environ` (at import or per call), and
invocations run in moto's request threads, so per-thread environments are impossible. The variables of
the invoked function are therefore written into the process-wide `os.environ` before its module is
imported and before every call. The functions of one stack share nearly all of them (table, bucket,
log level); a key that two functions set to different values is last-writer-wins while both run
concurrently, which is why deploy reports such conflicts.

Modules: each handler file is imported once (a warm container) under a module name derived from its
path, so the `app.py` of several functions never clash in `sys.modules`. The function's folder and its
layers' folders (and a layer's `python/` subfolder) go on `sys.path`, as /var/task and /opt/python do
in Lambda, so a handler can import modules next to it (`from routes import files`). Those sibling
modules are shared process-wide under their plain names: two functions that both have a top-level
`routes` cannot run in one process, and importing the second fails with a clear error instead of
silently running the first one's code.

Limits: `LambdaFunction.invoke` is wrapped too, with Lambda's 6 MB request and response payloads and its
concurrency (an account limit and each function's ReservedConcurrentExecutions); see `ConcurrencyLimits`.
A reservation (PutFunctionConcurrency, or a function created with one, as CloudFormation creates it) is
refused as Lambda refuses it when it would leave the account less than 100 unreserved: moto refuses it only
when told a quota, and never for a function CloudFormation creates.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from localcloud import iam, metering

log = logging.getLogger(__name__)

MODULE_PREFIX = "localcloud_fn_"


@dataclass(frozen=True)
class LocalFunction:
    """A deployed Lambda function and where its code lives on this machine."""

    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path | None
    environment: Mapping[str, str] = field(default_factory=dict)
    layer_dirs: tuple[Path, ...] = ()
    timeout: int = 3
    memory_size: int = 128
    # The role its AWS calls are checked against (localcloud.iam); None: unchecked.
    principal: iam.Principal | None = None


@dataclass(frozen=True)
class InvocationResult:
    """What moto expects back from `_invoke_lambda`."""

    payload: str
    errored: bool
    logs: str


class LambdaContext:
    """The context object the Python runtime passes to a handler."""

    def __init__(self, function: LocalFunction, request_id: str) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"localcloud/[$LATEST]{request_id.replace('-', '')}"
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    @classmethod
    def called_directly(
        cls, name: str, *, request_id: str = "req-1", timeout: int = 60, memory_size: int = 128
    ) -> LambdaContext:
        """The context for a handler a test calls itself, outside a deployed stack."""
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        function = LocalFunction(name, name, arn, "app.lambda_handler", None, timeout=timeout, memory_size=memory_size)
        return cls(function, request_id)


class HandlerError(Exception):
    """A failure before the handler ran, reported under the runtime's own error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


_functions: dict[str, LocalFunction] = {}
_modules: dict[Path, ModuleType] = {}
# Top-level module names found in function folders -> the folder that provides them.
_local_names: dict[str, Path] = {}
_extracted: dict[str, Path] = {}
# Re-entrant: importing a handler may invoke nothing, but registration and import share it.
_lock = threading.RLock()
_original_invoke: Callable[..., tuple[str, bool, str]] | None = None
_original_function_invoke: Callable[..., Any] | None = None
_original_create_function: Callable[..., Any] | None = None
_original_put_function_concurrency: Callable[..., Any] | None = None


def register(function: LocalFunction) -> None:
    """Make invocations of `function.name` run `function`'s local code."""
    with _lock:
        _functions[function.name] = function


def unregister(name: str) -> None:
    """Forget a registered function (its imported module stays cached)."""
    with _lock:
        _functions.pop(name, None)


def registered() -> dict[str, LocalFunction]:
    """The registered functions by physical name."""
    with _lock:
        return dict(_functions)


def apply_environment(environment: Mapping[str, str]) -> None:
    """Write a function's variables into the process environment (see the module docstring)."""
    os.environ.update({key: str(value) for key, value in environment.items()})


def install() -> None:
    """Replace moto's Docker-based `_invoke_lambda` with the in-process runner, with Lambda's limits (idempotent)."""
    global _original_invoke, _original_function_invoke, _original_create_function, _original_put_function_concurrency
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    with _lock:
        if _original_invoke is None:
            _original_invoke = LambdaFunction._invoke_lambda
            LambdaFunction._invoke_lambda = _moto_invoke_lambda  # type: ignore[method-assign]
        if _original_function_invoke is None:
            _original_function_invoke = LambdaFunction.invoke
            LambdaFunction.invoke = _moto_function_invoke  # type: ignore[method-assign]
        if _original_create_function is None:
            _original_create_function = LambdaBackend.create_function
            LambdaBackend.create_function = _moto_create_function  # type: ignore[method-assign]
        if _original_put_function_concurrency is None:
            _original_put_function_concurrency = LambdaBackend.put_function_concurrency
            LambdaBackend.put_function_concurrency = _moto_put_function_concurrency  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's own Lambda and forget registrations and extracted code."""
    global _original_invoke, _original_function_invoke, _original_create_function, _original_put_function_concurrency
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    with _lock:
        if _original_invoke is not None:
            LambdaFunction._invoke_lambda = _original_invoke  # type: ignore[method-assign]
            _original_invoke = None
        if _original_function_invoke is not None:
            LambdaFunction.invoke = _original_function_invoke  # type: ignore[method-assign]
            _original_function_invoke = None
        if _original_create_function is not None:
            LambdaBackend.create_function = _original_create_function  # type: ignore[method-assign]
            _original_create_function = None
        if _original_put_function_concurrency is not None:
            LambdaBackend.put_function_concurrency = _original_put_function_concurrency  # type: ignore[method-assign]
            _original_put_function_concurrency = None
        limits.reset()
        _functions.clear()
        for folder in _extracted.values():
            shutil.rmtree(folder, ignore_errors=True)
        _extracted.clear()


def forget_modules() -> None:
    """A cold start for every function: handler modules are imported afresh, caches next to them emptied.

    Sibling modules (the api's `routes`) stay imported, since tests may hold them; their functools caches
    (clients and settings of the previous cloud) are cleared instead. So are Powertools' default parameter
    providers, whose clients would still point at the previous endpoint (or, from a moto-mocked test, at AWS).
    """
    with _lock:
        for module in _modules.values():
            sys.modules.pop(module.__name__, None)
        _modules.clear()
        for name in _local_names:
            for loaded, module in list(sys.modules.items()):
                if loaded == name or loaded.startswith(f"{name}."):
                    for value in list(vars(module).values()):
                        if callable(getattr(value, "cache_clear", None)):
                            value.cache_clear()
        _local_names.clear()
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()


def handler_file(function: LocalFunction) -> tuple[Path, str]:
    """The file and attribute a Handler string such as `app.lambda_handler` names."""
    if function.code_dir is None:
        raise HandlerError("Runtime.ImportModuleError", f"{function.name} has no local code")
    module_path, _, attribute = function.handler.rpartition(".")
    if not module_path or not attribute:
        raise HandlerError("Runtime.MalformedHandlerName", f"Bad handler '{function.handler}'")
    relative = Path(*module_path.replace("/", ".").split("."))
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        path = function.code_dir / candidate
        if path.is_file():
            return path.resolve(), attribute
    raise HandlerError(
        "Runtime.ImportModuleError",
        f"Unable to import module '{module_path}': No module named '{module_path}'",
    )


def top_level_names(folder: Path) -> set[str]:
    """Names a folder on sys.path provides: modules and packages directly inside it."""
    names: set[str] = set()
    for entry in folder.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier() and entry.name != "__pycache__":
            names.add(entry.name)
    return names


def claim_names(folder: Path, exclude: str = "") -> None:
    """Record the modules a function folder provides; fail if another function folder has them too."""
    folder = folder.resolve()
    with _lock:
        for name in sorted(top_level_names(folder) - {exclude}):
            owner = _local_names.setdefault(name, folder)
            if owner != folder:
                raise HandlerError(
                    "Runtime.ImportModuleError",
                    f"{folder} and {owner} both provide a top-level module '{name}'; the local cloud runs "
                    "every function in one process, so rename one of them",
                )


def extend_sys_path(folders: Sequence[Path]) -> None:
    """Put folders first on sys.path, in the given order, unless they are on it already."""
    with _lock:
        for folder in reversed([str(p) for p in folders]):
            if folder not in sys.path:
                sys.path.insert(0, folder)


def import_path(function: LocalFunction) -> list[Path]:
    """What a function's imports see first: its own folder, then its layers (as in Lambda)."""
    own = [function.code_dir] if function.code_dir is not None else []
    return [*own, *layer_search_path(function)]


def load_module(path: Path, search_path: Sequence[Path] = ()) -> ModuleType:
    """Import a file under a name unique to its path (cached); `search_path` goes first on sys.path."""
    path = path.resolve()
    with _lock:
        cached = _modules.get(path)
        if cached is not None:
            return cached
        extend_sys_path(search_path)
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        name = f"{MODULE_PREFIX}{digest}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise HandlerError("Runtime.ImportModuleError", f"Cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            # A failed import must not leave a half-initialised module to be found next time.
            sys.modules.pop(name, None)
            raise
        _modules[path] = module
        return module


def layer_search_path(function: LocalFunction) -> list[Path]:
    """Folders a function's layers contribute to sys.path, as /opt/python would."""
    folders: list[Path] = []
    for layer in function.layer_dirs:
        if (layer / "python").is_dir():
            folders.append(layer / "python")
        folders.append(layer)
    return folders


def load_function_module(function: LocalFunction) -> ModuleType:
    """Import a function's handler module with its environment and layers in effect."""
    path, _ = handler_file(function)
    apply_environment(function.environment)
    with _lock:
        cached = _modules.get(path)
    if cached is not None:
        return cached
    assert function.code_dir is not None  # handler_file checked it
    top_level = function.handler.rpartition(".")[0].replace("/", ".").split(".")[0]
    claim_names(function.code_dir, exclude=top_level)
    try:
        return load_module(path, import_path(function))
    except SyntaxError as exc:
        raise HandlerError("Runtime.UserCodeSyntaxError", f"Syntax error in module: {exc}") from exc
    except ImportError as exc:
        module = function.handler.rpartition(".")[0]
        raise HandlerError("Runtime.ImportModuleError", f"Unable to import module '{module}': {exc}") from exc


def load_handler(function: LocalFunction) -> Callable[[Any, Any], Any]:
    """The handler callable a function's Handler string names."""
    _, attribute = handler_file(function)
    module = load_function_module(function)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        module_name = function.handler.rpartition(".")[0]
        raise HandlerError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """Lambda's error body for an exception; Step Functions names the error after `errorType`."""
    error_type = exc.error_type if isinstance(exc, HandlerError) else type(exc).__name__
    return {
        "errorMessage": str(exc),
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


@contextmanager
def thread_event_loop() -> Iterator[None]:
    """An event loop set for this thread while a handler runs.

    Lambda's runtime imports a handler and calls it on one thread, so a loop a module sets at import
    (Mangum does) is current at every call. Here modules are imported once, in one thread, and called
    in moto's request threads: each call gets a current loop of its own, as the runtime's thread has.
    """
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        pass
    else:
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def invoke(function: LocalFunction, event: Any, request_id: str | None = None) -> InvocationResult:
    """Run one invocation of `function` in this thread, as the Lambda Python runtime would."""
    request_id = request_id or str(uuid.uuid4())
    if isinstance(event, str | bytes):
        # moto hands over the raw body when the request had none ("{}").
        event = json.loads(event or "{}")
    started = time.monotonic()
    errored = False
    try:
        handler = load_handler(function)
        apply_environment(function.environment)
        with metering.running(function.logical_id), iam.acting_as(function.principal), thread_event_loop():
            result = handler(event, LambdaContext(function, request_id))
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise HandlerError(
                "Runtime.MarshalError", f"Unable to marshal response: {exc} is not JSON serializable"
            ) from exc
    except Exception as exc:
        errored = True
        payload = json.dumps(error_payload(exc, request_id))
        log.info("%s raised %s: %s", function.name, type(exc).__name__, exc, exc_info=exc)
    elapsed = time.monotonic() - started
    metering.invoked(function.logical_id, function.memory_size, elapsed)
    elapsed_ms = elapsed * 1000
    if elapsed_ms > function.timeout * 1000:
        log.warning("%s ran %.0f ms, beyond its %s s Timeout", function.name, elapsed_ms, function.timeout)
    logs = "\n".join(
        [
            f"START RequestId: {request_id} Version: $LATEST",
            *([f"ERROR {payload}"] if errored else []),
            f"END RequestId: {request_id}",
            f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\tMemory Size: {function.memory_size} MB",
        ]
    )
    return InvocationResult(payload=payload, errored=errored, logs=logs)


def _code_from_moto(fn: Any) -> Path | None:
    """Unpack the zip moto stores for a function nobody registered (e.g. created by a test)."""
    code: bytes = getattr(fn, "code_bytes", b"") or b""
    if not code:
        return None
    digest = hashlib.sha256(code).hexdigest()
    with _lock:
        folder = _extracted.get(digest)
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="localcloud-fn-"))
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(folder)  # archives we (or the test) uploaded to moto
            _extracted[digest] = folder
        return folder


def function_for(fn: Any) -> LocalFunction:
    """The registered function for a moto LambdaFunction, or one built from moto's own record."""
    with _lock:
        registered_fn = _functions.get(fn.function_name)
    if registered_fn is not None:
        return registered_fn
    layer_dirs = tuple(dict.fromkeys(d for f in registered().values() for d in f.layer_dirs))
    return LocalFunction(
        logical_id=fn.function_name,
        name=fn.function_name,
        arn=fn.function_arn,
        handler=fn.handler or "",
        code_dir=_code_from_moto(fn),
        environment={k: str(v) for k, v in (fn.environment_vars or {}).items()},
        layer_dirs=layer_dirs,
        timeout=int(fn.timeout or 3),
        memory_size=int(fn.memory_size or 128),
    )


def _moto_invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Drop-in for `LambdaFunction._invoke_lambda`: same arguments, same result tuple."""
    result = invoke(function_for(self), {} if event is None else event)
    try:
        self.logs_backend.ensure_log_group(self.logs_group_name)
        self.save_logs(result.logs)
    except Exception:  # CloudWatch copies of the logs are a convenience only
        log.debug("could not store logs of %s", self.function_name, exc_info=True)
    return result.payload, result.errored, result.logs


# ------------------------------------------------------------------------------------------ limits
# Lambda's synchronous invocation payload quota, request and response: 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Lambda's documented default account concurrency; what a brand-new account starts with (the local cloud's
# account unless told otherwise); and the part of any account Lambda never lets reservations take.
DEFAULT_ACCOUNT_CONCURRENCY = 1000
NEW_ACCOUNT_CONCURRENCY = 10
MIN_UNRESERVED_CONCURRENCY = 100
RESERVATION_REFUSED = (
    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
    f"below its minimum value of [{MIN_UNRESERVED_CONCURRENCY}]."
)


def _json_error(code: int, error_type: str, message: str) -> Exception:
    """An error moto's request handler answers with HTTP `code`, as Lambda's Invoke API does."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(error_type, message)
    error.code = code
    return error


class ConcurrencyLimits:
    """Lambda's concurrency: an account limit, shared by every function without a reservation.

    A function with ReservedConcurrentExecutions runs at most that many at once (0 disables it); the
    others share what the reservations leave of the account limit. A synchronous invocation beyond its
    pool fails with TooManyRequestsException (HTTP 429), which Step Functions names
    `Lambda.TooManyRequestsException`. Invocations by event sources and `Event` invocations are queued and
    retried by Lambda itself on AWS: here they run at once, and count as in flight.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.account_limit = DEFAULT_ACCOUNT_CONCURRENCY
        self.in_flight: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.injected: dict[str, int] = {}

    def reset(self, account_limit: int = DEFAULT_ACCOUNT_CONCURRENCY) -> None:
        """Forget what is in flight and counted, and set the account limit."""
        if account_limit < 1:
            raise ValueError("the account concurrency limit must be at least 1")
        with self._lock:
            self.account_limit = account_limit
            self.in_flight.clear()
            self.throttled.clear()
            self.injected.clear()

    def inject_throttles(self, name: str, count: int) -> None:
        """Refuse the next `count` synchronous invocations of `name` as if its pool were full (a fault)."""
        with self._lock:
            self.injected[name] = self.injected.get(name, 0) + count

    @contextmanager
    def hold(self, name: str, count: int) -> Iterator[None]:
        """Count `count` executions of `name` in flight for the block: another workload of the account."""
        with self._lock:
            self.in_flight[name] = self.in_flight.get(name, 0) + count
        try:
            yield
        finally:
            with self._lock:
                self.in_flight[name] -= count

    def allows(self, reservations: Mapping[str, int]) -> bool:
        """Whether the account can give these reservations and keep Lambda's unreserved minimum."""
        return self.account_limit - sum(reservations.values()) >= MIN_UNRESERVED_CONCURRENCY

    @contextmanager
    def slot(self, name: str, reservations: Mapping[str, int], throttle: bool) -> Iterator[None]:
        """Hold one concurrent execution of `name` for the block, or raise TooManyRequestsException."""
        with self._lock:
            own = reservations.get(name)
            if own is not None:
                full, reason = self.in_flight.get(name, 0) >= own, "ReservedFunctionConcurrentInvocationLimitExceeded"
            else:
                pool = self.account_limit - sum(reservations.values())
                shared = sum(n for fn, n in self.in_flight.items() if fn not in reservations)
                full, reason = shared >= pool, "ConcurrentInvocationLimitExceeded"
            if throttle and self.injected.get(name, 0) > 0:
                self.injected[name] -= 1
                full, reason = True, "injected"
            if full and throttle:
                self.throttled[name] = self.throttled.get(name, 0) + 1
                raise _json_error(429, "TooManyRequestsException", f"Rate Exceeded. ({reason})")
            self.in_flight[name] = self.in_flight.get(name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight[name] -= 1


limits = ConcurrencyLimits()


def reservations_in(backend: Any) -> dict[str, int]:
    """ReservedConcurrentExecutions of a moto Lambda backend's functions, by name."""
    return {
        fn.function_name: int(fn.reserved_concurrency)
        for fn in backend.list_functions()
        if fn.reserved_concurrency is not None and str(fn.reserved_concurrency) != ""
    }


def _refuse_unless_allowed(backend: Any, name: str, reserved: Any) -> None:
    """Lambda's InvalidParameterValueException for a reservation the account cannot give."""
    from moto.awslambda.exceptions import InvalidParameterValueException

    # The function's own reservation, if it has one, is the one being replaced.
    if not limits.allows({**reservations_in(backend), name: int(reserved)}):
        raise InvalidParameterValueException(RESERVATION_REFUSED)


def _moto_create_function(self: Any, spec: dict[str, Any]) -> Any:
    """Drop-in for `LambdaBackend.create_function`: CloudFormation's functions bring their reservation along."""
    assert _original_create_function is not None  # installed together
    reserved = spec.get("ReservedConcurrentExecutions")
    if reserved is not None and str(reserved) != "":
        _refuse_unless_allowed(self, spec["FunctionName"], reserved)
    return _original_create_function(self, spec)


def _moto_put_function_concurrency(self: Any, function_name: str, reserved_concurrency: str) -> Any:
    """Drop-in for `LambdaBackend.put_function_concurrency`, with Lambda's unreserved minimum."""
    assert _original_put_function_concurrency is not None  # installed together
    _refuse_unless_allowed(self, self.get_function(function_name).function_name, reserved_concurrency)
    return _original_put_function_concurrency(self, function_name, reserved_concurrency)


def _synchronous(request_headers: Any) -> bool:
    # moto's own event sources (SQS, S3, streams, EventBridge) invoke with no headers at all.
    if not request_headers:
        return False
    kind = request_headers.get("X-Amz-Invocation-Type") or request_headers.get("x-amz-invocation-type")
    return kind in (None, "RequestResponse")


def _moto_function_invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
    """Drop-in for `LambdaFunction.invoke`: Lambda's payload and concurrency limits around moto's."""
    from moto.awslambda.utils import get_backend

    assert _original_function_invoke is not None  # installed together
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise _json_error(
            413,
            "RequestEntityTooLargeException",
            f"{len(raw)} byte payload is too large for the RequestResponse invocation type ({MAX_PAYLOAD_BYTES} bytes)",
        )
    synchronous = _synchronous(request_headers)
    reservations = reservations_in(get_backend(self.account_id, self.region))
    with limits.slot(self.function_name, reservations, throttle=synchronous):
        payload = _original_function_invoke(self, body, request_headers, response_headers)
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if synchronous and size > MAX_PAYLOAD_BYTES:
        response_headers["x-amz-function-error"] = "Unhandled"
        error = {
            "errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({MAX_PAYLOAD_BYTES} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
        payload = json.dumps(error).encode()
    return payload
