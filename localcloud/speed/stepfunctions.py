"""Step Functions' clients made once, not per task: moto's interpreter built one for every Task it ran.

moto's interpreter built a new boto3 client for every Task and ItemReader it ran (about 10 ms of CPU
and a new client class each); the clients, all signed alike, are made once per service, region and
moto endpoint and reused, as a service keeps its connections.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from localcloud.iam import STEP_FUNCTIONS_ACCESS_KEY
from localcloud.patching import Patches

# Connections the interpreter's shared client of a service keeps (urllib3 drops, and warns about, any beyond).
POOLED_CONNECTIONS = 100

_patches = Patches()


def _shared_clients() -> Callable[..., Any]:
    """moto.stepfunctions.parser's boto_client_for, answering one client per region, service and endpoint."""
    clients: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        import boto3
        from botocore.config import Config
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

        key = (region, service, moto_server_port(), botocore_stubber.enabled)
        with lock:
            if key not in clients:
                # As moto builds it, with connections enough for every Map child in flight at once.
                endpoint = (
                    {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{moto_server_port()}"}
                )
                # moto's own fake keys: localcloud.iam tells the state machine's calls by this access key.
                clients[key] = boto3.client(
                    aws_access_key_id=STEP_FUNCTIONS_ACCESS_KEY, aws_secret_access_key="sk",  # noqa: S106
                    region_name=region, service_name=service,
                    config=Config(
                        parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=POOLED_CONNECTIONS,
                    ),
                    **endpoint,
                )  # fmt: skip
            return clients[key]

    return boto_client_for


def install() -> None:
    """Reuse the interpreter's clients (idempotent)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client

    with _patches.lock:
        if _patches:
            return
        original = boto_client.boto_client_for
        shared = _shared_clients()
        del lambda_eval_utils, resource_eval_s3  # imported so that they are in sys.modules below
        # Each module of the interpreter imported the function by name: each has its own reference to replace.
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "")
            if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is original:
                _patches.patch(module, "boto_client_for", lambda _: shared)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
