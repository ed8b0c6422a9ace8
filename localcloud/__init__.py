"""Batchline's local cloud: template.yaml on moto, Lambdas in-process, the API on uvicorn; no Docker.

Development-side only, never deployed. Names are imported lazily, so `localcloud.template` stays
cheap to import for tests that only parse the template.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud
    from localcloud.deploy import DeployedStack, DeployError, deploy
    from localcloud.lambdas import LocalFunction
    from localcloud.servers import LocalCloudError
    from localcloud.template import load_template
    from localcloud.translation import Translation, translate

_EXPORTS = {
    "LocalCloud": "localcloud.cloud",
    "LocalCloudError": "localcloud.servers",
    "DeployedStack": "localcloud.deploy",
    "DeployError": "localcloud.deploy",
    "deploy": "localcloud.deploy",
    "LocalFunction": "localcloud.lambdas",
    "Translation": "localcloud.translation",
    "load_template": "localcloud.template",
    "translate": "localcloud.translation",
}

__all__ = [
    "DeployError",
    "DeployedStack",
    "LocalCloud",
    "LocalCloudError",
    "LocalFunction",
    "Translation",
    "deploy",
    "load_template",
    "translate",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'localcloud' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
