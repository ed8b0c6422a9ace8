"""A Lambda function's code on this machine: its handler imported by file path, its layers on sys.path.

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
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from localcloud import iam

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


class HandlerError(Exception):
    """A failure before the handler ran, reported under the runtime's own error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


_modules: dict[Path, ModuleType] = {}
# Top-level module names found in function folders -> the folder that provides them.
_local_names: dict[str, Path] = {}
# Re-entrant: load_module puts folders on sys.path under it.
_lock = threading.RLock()


def apply_environment(environment: Mapping[str, str]) -> None:
    """Write a function's variables into the process environment (see the module docstring)."""
    os.environ.update({key: str(value) for key, value in environment.items()})


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

    base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]  # Powertools' registry, not exported


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
