"""Lambda on the local cloud: moto's invocations run in-process through the functions' real handlers.

moto funnels every invocation (the Invoke API, Step Functions tasks, SQS and S3 triggers) through
`moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)`, which
normally starts a Docker container. `install()` replaces it with `localcloud.lambda_runtime.invoke`: the
handler imported by file path (localcloud.lambda_code) and called in the calling thread. It also applies
Lambda's payload and concurrency limits (localcloud.lambda_limits).

A function deployed from the stack is registered with where its code lives; one nobody registered (a
test created it through the API) runs from the zip moto stores for it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from localcloud import lambda_limits
from localcloud.lambda_code import (
    HandlerError,
    LocalFunction,
    apply_environment,
    extend_sys_path,
    forget_modules,
    layer_search_path,
    load_function_module,
)
from localcloud.lambda_limits import NEW_ACCOUNT_CONCURRENCY, limits
from localcloud.lambda_runtime import invoke
from localcloud.patching import Patches

# What the rest of the local cloud uses of Lambda, wherever it is defined.
__all__ = [
    "NEW_ACCOUNT_CONCURRENCY",
    "HandlerError",
    "LocalFunction",
    "apply_environment",
    "extend_sys_path",
    "forget_modules",
    "function_for",
    "install",
    "layer_search_path",
    "limits",
    "load_function_module",
    "register",
    "registered",
    "uninstall",
    "unregister",
]

log = logging.getLogger(__name__)

_functions: dict[str, LocalFunction] = {}
# A zip's digest -> the folder it was unpacked into.
_extracted: dict[str, Path] = {}
_lock = threading.Lock()
_patches = Patches()


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


def install() -> None:
    """Replace moto's Docker-based `_invoke_lambda` with the in-process runner, with Lambda's limits (idempotent)."""
    from moto.awslambda.models import LambdaFunction

    with _patches.lock:
        _patches.patch(LambdaFunction, "_invoke_lambda", lambda _: _moto_invoke_lambda)
    lambda_limits.install()


def uninstall() -> None:
    """Restore moto's own Lambda and forget registrations and extracted code."""
    lambda_limits.uninstall()
    with _patches.lock:
        _patches.undo()
    with _lock:
        _functions.clear()
        for folder in _extracted.values():
            shutil.rmtree(folder, ignore_errors=True)
        _extracted.clear()
