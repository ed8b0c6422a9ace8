"""The one way the local cloud patches moto, botocore or werkzeug: a module's `Patches`, and `installed()`.

Each module that patches has a `Patches` of its own and `install()` / `uninstall()` around it, so no module
keeps originals by hand and every patch is undone as it was found. The local cloud installs them for its
lifetime; a test that runs moto in-process takes them for a block with `installed()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Any

# An attribute the owner inherits: undo() removes the patch rather than set the inherited one on it.
_INHERITED = object()


class Patches:
    """One module's replacements of attributes of moto (or botocore, werkzeug), each undone as it was found."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held by a module's install() and uninstall() around their patches
        self._originals: dict[tuple[Any, str], Any] = {}

    def __bool__(self) -> bool:
        return bool(self._originals)

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        """Replace `owner.name` by `make(what it is now)`; patched already, it stays as it is."""
        if (owner, name) in self._originals:
            return
        original = owner.__dict__.get(name, _INHERITED)
        self._originals[(owner, name)] = original
        setattr(owner, name, make(getattr(owner, name) if original is _INHERITED else original))

    def undo(self) -> None:
        """Put back every attribute replaced."""
        for (owner, name), original in self._originals.items():
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._originals.clear()


@contextmanager
def installed(*modules: ModuleType) -> Iterator[None]:
    """The modules' patches for the duration of a block, undone in reverse order (also when one fails)."""
    with ExitStack() as undo:
        for module in modules:
            module.install()
            undo.callback(module.uninstall)
        yield
