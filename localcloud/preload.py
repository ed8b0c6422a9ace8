"""Import up front, in the calling thread, what would otherwise be imported by whichever thread needs it first.

The openai SDK imports each resource (`client.files`, `client.batches`, ...) the first time it is used,
and the local cloud imports a function's handler (and, through it, aiohttp and the core) on its first
invocation, in one of moto's request threads. When two threads import overlapping modules in
different orders, Python's import deadlock avoidance hands one of them a partially initialised module
("cannot import name ... partially initialized module"). Importing both sets before any thread starts
leaves nothing to race.
"""

from __future__ import annotations

import importlib

# What the demo and the tests use of the SDK, the HTTP client under it, and the providers' client.
SDK_MODULES = (
    "httpx",
    "aiohttp",
    "openai",
    "openai.types",
    "openai.resources.files",
    "openai.resources.batches",
    "openai.resources.uploads",
    "openai.resources.models",
    "openai.resources.chat",
    "openai.resources.completions",
    "openai.resources.embeddings",
    "openai.resources.responses",
    "openai.pagination",
)


def preload_sdk() -> None:
    """Import the openai SDK's lazily imported parts in this thread."""
    for name in SDK_MODULES:
        importlib.import_module(name)
