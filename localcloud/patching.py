"""Each local cloud module that patches moto or botocore has `install()` and `uninstall()`; this scopes them.

The local cloud installs them for its lifetime; a test that runs moto in-process takes them for a block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import ModuleType


@contextmanager
def installed(*modules: ModuleType) -> Iterator[None]:
    """The modules' patches for the duration of a block, undone in reverse order (also when one fails)."""
    with ExitStack() as undo:
        for module in modules:
            module.install()
            undo.callback(module.uninstall)
        yield
