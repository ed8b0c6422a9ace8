"""Tracing costs nothing when it is off, and still traces when it is on.

Importing the X-Ray SDK's recorder is a tenth of the api function's cold start even with tracing off,
so a handler with tracing off must not import it at all. Each check runs in a fresh interpreter:
`sys.modules` of this one holds whatever other tests imported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("api", "plan", "worker", "finalize", "ingest", "sweeper")
# What the template gives the functions (their settings are read when first used, not at import).
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "POWERTOOLS_SERVICE_NAME": "batchline",
    "POWERTOOLS_METRICS_NAMESPACE": "Batchline",
    "TABLE_NAME": "table",
    "BUCKET_NAME": "bucket",
    "ADMIN_KEY_SECRET": "admin",
    "KEY_HASH_SECRET": "pepper",
    "IDEMPOTENCY_TABLE": "idempotency",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:batch",
    "REQUESTS_PER_SECOND": "100",
    "PROVIDER_SECRET_PREFIX": "batchline/",
    "ALLOW_PRIVATE_BACKENDS": "false",
    "PATH": os.environ.get("PATH", ""),
}


def run_in_function(function: str, code: str, env: dict[str, str]) -> str:
    """Run `code` in a fresh interpreter laid out as the function's Lambda is: its code, then the layer."""
    path = os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers" / "core")])
    done = subprocess.run(  # noqa: S603  # our own interpreter
        [sys.executable, "-c", code],
        env={**ENV, **env, "PYTHONPATH": path},
        cwd=ROOT / "functions" / function,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_handler_with_tracing_off_never_imports_the_xray_sdk(function: str) -> None:
    # Given tracing switched off as the template does when its Tracing parameter is not Active
    code = "import sys, app; print([m for m in sys.modules if m.startswith('aws_xray_sdk')])"
    # When the handler module is imported
    loaded = run_in_function(function, code, {"POWERTOOLS_TRACE_DISABLED": "true"})
    # Then no part of the X-Ray SDK was
    assert loaded == "[]"


def test_a_handler_outside_lambda_never_imports_the_xray_sdk() -> None:
    # Given no Lambda environment (Powertools turns tracing off there by itself: no daemon to send to)
    code = "import sys, app; print([m for m in sys.modules if m.startswith('aws_xray_sdk')])"
    # When the api handler is imported, Then the X-Ray SDK is not
    assert run_in_function("api", code, {}) == "[]"


def test_a_handler_with_tracing_on_sends_its_subsegment_to_the_daemon() -> None:
    # Given a Lambda environment with active tracing, and an X-Ray daemon address we listen on
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(60)
    address = f"127.0.0.1:{daemon.getsockname()[1]}"
    env = {
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "api"),
        "AWS_LAMBDA_FUNCTION_NAME": "batchline-api",
        "AWS_XRAY_DAEMON_ADDRESS": address,
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "POWERTOOLS_TRACE_DISABLED": "false",
    }
    code = (
        "import json, sys, app\n"
        "from pathlib import Path\n"
        "class Context:\n"
        "    function_name = 'batchline-api'; function_version = '$LATEST'; memory_limit_in_mb = 1024\n"
        "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:batchline-api'\n"
        "    aws_request_id = 'req-1'\n"
        "    def get_remaining_time_in_millis(self): return 30000\n"
        "event = json.loads(Path('../../events/api_get_file.json').read_text())\n"
        "answer = app.lambda_handler(event, Context())\n"
        "from aws_xray_sdk.core.patcher import _PATCHED_MODULES\n"
        "print(json.dumps({'status': answer['statusCode'], 'xray': 'aws_xray_sdk.core' in sys.modules,\n"
        "    'patched': sorted(_PATCHED_MODULES)}))\n"
    )
    try:
        # When the api handler answers a request
        answer = json.loads(run_in_function("api", code, env))
        # Then it answered, with the X-Ray SDK loaded, tracing the two clients the functions call through
        # (AWS's and the providers'), and no library they do not use (patching one imports it)
        assert answer == {"status": 401, "xray": True, "patched": ["botocore"]}
        # And the daemon got the handler's subsegment (the SDK sends each one as it closes)
        names = []
        while "## lambda_handler" not in names:
            header, _, body = daemon.recv(65536).partition(b"\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            names.append(json.loads(body)["name"])
    finally:
        daemon.close()


def test_with_tracing_off_the_decorators_pass_answers_and_errors_through() -> None:
    import asyncio

    from aws_lambda_powertools import Tracer

    from batchline.observability import Untraced

    # Given a Tracer over the provider that records nothing (the one handlers get with tracing off)
    tracer = Tracer(provider=Untraced(), disabled=False)

    @tracer.capture_lambda_handler
    def handler(event: dict[str, str], context: object) -> dict[str, str]:
        if event.get("fail"):
            raise KeyError(event["fail"])
        return {"echo": event["x"]}

    @tracer.capture_method
    async def fetch(x: int) -> int:
        return x + 1

    # When they are called, Then answers come back and errors go up unchanged
    assert handler({"x": "1"}, None) == {"echo": "1"}
    with pytest.raises(KeyError, match="boom"):
        handler({"fail": "boom"}, None)
    assert asyncio.run(fetch(1)) == 2
