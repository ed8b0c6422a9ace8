"""LocalCloud: moto's server, the stack from template.yaml, in-process Lambdas and the API on uvicorn."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3

from localcloud import (
    capacity,
    cloudformation,
    faults,
    iam,
    lambdas,
    metering,
    moto_fixes,
    signatures,
    stepfunctions,
    streams,
)
from localcloud.apigateway import INTEGRATION_TIMEOUT_SECONDS, ApiGatewayLimits, stage_throttle
from localcloud.deploy import DeployedStack, deploy
from localcloud.template import load_template

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# moto keeps an S3 object's bytes in memory up to ~5 MB, so every batch's parts stayed in this process: its
# RSS grew with the batches it ran. Bodies over this size go to a temporary file instead (each holds an open
# descriptor, which is why small ones, such as manifests, stay in memory).
S3_MEMORY_BYTES = 64 * 1024
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


# glibc's mallopt parameter, and the size from which a buffer is always its own mapping (see below).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_buffers() -> None:
    """Make freed buffers of 1 MiB and more go back to the OS at once (glibc only; elsewhere nothing).

    On AWS every function is a process of its own; here all of them, moto and the API share one, in dozens
    of threads. glibc raises its mmap threshold to the largest buffer freed (up to 32 MiB), after which a
    4 MiB upload part or a whole output file read is carved from a per-thread arena that keeps the memory:
    measured at 50,000 lines, peak RSS 721 MiB with the default and 510 MiB with a fixed 1 MiB threshold.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


class LocalCloudError(Exception):
    """The local cloud could not start."""


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LocalCloudError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def seed_demo_data(state_file: Path | None = None) -> dict[str, str]:
    """Demo tenant, API key and job (localcloud.seed), once the stack is deployed.

    With a state file: the ones it names (written by an earlier run), else new ones, which it then keeps.
    """
    # Imported here: localcloud.seed needs the core, which is on sys.path only once the functions are set up.
    from batchline.config import ApiSettings
    from localcloud import seed

    keep = json.loads(state_file.read_text()) if state_file is not None and state_file.exists() else None
    # ApiSettings reads the api function's variables, which are in os.environ by now.
    seeded = seed.seed_demo(ApiSettings(), keep=keep)
    if state_file is not None and seeded != keep:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        written = state_file.with_suffix(".tmp")
        # Keys: readable by their owner only, and replaced whole (a crash never leaves half a file).
        written.touch(mode=0o600)
        written.write_text(json.dumps(seeded, indent=2) + "\n")
        written.replace(state_file)
    return seeded


class LocalCloud:
    """The whole stack on loopback, without Docker; a context manager (see DESIGN.md, the local cloud).

    Start-up: fake credentials and AWS_ENDPOINT_URL go into os.environ (restored on stop); moto's
    ThreadedMotoServer starts with Step Functions execution on; Lambda invocations are patched to run
    in-process; template.yaml is deployed as a stack; every function's environment is applied (the api
    function's last); demo data is seeded; the api function's ASGI `app` is served by uvicorn.
    One LocalCloud per process at a time: moto's backends and os.environ are process-wide.
    """

    def __init__(
        self,
        *,
        port: int | None = 0,
        moto_port: int | None = 0,
        host: str = "127.0.0.1",
        template: Path | None = None,
        stack_name: str = "batchline",
        parameters: Mapping[str, str] | None = None,
        api_function: str = "ApiFunction",
        table_resource: str = "Table",
        serve_api: bool = True,
        seed: bool = True,
        log_level: str = "warning",
        startup_timeout: float = 60.0,
        account_concurrency: int = lambdas.NEW_ACCOUNT_CONCURRENCY,
        retry_interval_scale: float = 1.0,
        wait_scale: float = 1.0,
        ttl_interval: float | None = 60.0,
        api_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        state_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or 0
        self.moto_port = moto_port or 0
        self.template = Path(template) if template else ROOT / "template.yaml"
        self.stack_name = stack_name
        # Its fake upstreams listen on loopback, which the stack refuses unless told otherwise.
        self.parameters = {"AllowPrivateBackends": "true", **(parameters or {})}
        self.api_function = api_function
        self.table_resource = table_resource
        self.serve_api_on_start = serve_api
        self.seed_on_start = seed
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        # Lambda's concurrency quota of the account, a brand-new one's (10) unless told: the stack must deploy
        # and run there. Lambda keeps 100 of it unreserved, so a reservation needs a larger account.
        self.account_concurrency = account_concurrency
        # Multiplies every ASL Retry interval (1 = as on AWS); see localcloud.stepfunctions.
        self.retry_interval_scale = retry_interval_scale
        # Multiplies every ASL Wait (1 = as on AWS; 0 skips them); see localcloud.stepfunctions.
        self.wait_scale = wait_scale
        # How often DynamoDB's TTL runs (None: only when expire_ttl is called).
        self.ttl_interval = ttl_interval
        # API Gateway's integration timeout (30 s, as on AWS). Only a load test stretches it: its requests
        # also wait on this one-process emulator (one GIL, serialized moto), which AWS does not have.
        self.api_timeout = api_timeout
        # Where the seeded keys and ids are kept across restarts (`make local`); None: new ones each start.
        self.state_file = state_file
        # DynamoDB's capacity units per table, partition key and second while the cloud runs (localcloud.capacity);
        # metering's snapshots carry its totals and peaks. Its clock is settable, for a benchmark's own time.
        self.capacity = capacity.Meter()
        self._reaper: streams.Reaper | None = None
        self.seeded: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self._stack: DeployedStack | None = None
        self._moto: Any = None
        self._moto_config: dict[str, Any] | None = None
        self._uvicorn: Any = None
        self._uvicorn_thread: threading.Thread | None = None
        self._api_socket: socket.socket | None = None
        self._saved_environ: dict[str, str] | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # --------------------------------------------------------------------------------- properties
    @property
    def moto_endpoint(self) -> str:
        """http://127.0.0.1:<moto port>, what AWS_ENDPOINT_URL is set to."""
        return f"http://{self.host}:{self.moto_port}"

    @property
    def base_url(self) -> str:
        """The openai SDK's base_url: http://127.0.0.1:<port>/v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def stack(self) -> DeployedStack:
        """The deployed stack."""
        if self._stack is None:
            raise LocalCloudError("the local cloud is not started")
        return self._stack

    @property
    def api_key(self) -> str:
        """The seeded demo tenant's API key."""
        return self.seeded["api_key"]

    @property
    def admin_key(self) -> str:
        """The admin API key."""
        return self.seeded["admin_key"]

    @property
    def job_id(self) -> str:
        """The seeded demo job."""
        return self.seeded["job_id"]

    @property
    def tenant_id(self) -> str:
        """The seeded demo tenant."""
        return self.seeded["tenant_id"]

    @property
    def table_name(self) -> str:
        """The physical name of the stack's table."""
        return self.stack.outputs.get("TableName") or self.stack.physical_id(self.table_resource)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for the moto server (cached per service when no kwargs are given)."""
        if kwargs:
            return self._new_client(service, **kwargs)
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]

    def _new_client(self, service: str, **kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "endpoint_url": self.moto_endpoint,
            "region_name": REGION,
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            **kwargs,
        }
        return boto3.client(service, **options)

    # -------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto, deploy, seed and serve (as configured); stops again if any step fails."""
        started = time.monotonic()
        try:
            if self.serve_api_on_start:
                # Bound first, so a taken port fails in milliseconds rather than after the deploy.
                self._listen()
            self._set_environment()
            return_large_buffers()
            self._start_moto()
            # Whatever an earlier cloud (or test) in this process imported and cached starts cold.
            lambdas.forget_modules()
            lambdas.install()
            lambdas.limits.reset(self.account_concurrency)
            stepfunctions.install(retry_interval_scale=self.retry_interval_scale, wait_scale=self.wait_scale)
            moto_fixes.install()
            self.capacity.reset()
            capacity.attach(self.capacity)
            metering.meter_dynamodb(self.capacity)
            # S3 checks presigned URLs and refuses the anonymous: moto's server does neither.
            signatures.install({FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})
            cloudformation.install()
            self._stack = deploy(
                self.template,
                self.client,
                stack_name=self.stack_name,
                parameters=self.parameters,
                region=REGION,
                timeout=self.startup_timeout,
            )
            self._apply_function_environment()
            self._enforce_iam()
            if self.ttl_interval:
                self._reaper = streams.Reaper(self.ttl_interval)
                self._reaper.start()
            if self.seed_on_start:
                self.seeded = seed_demo_data(self.state_file)
            if self.serve_api_on_start:
                self.serve_api()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("local cloud ready in %.2f s", self.startup_seconds)

    def stop(self) -> None:
        """Stop serving, reset moto and restore os.environ and moto's Lambda invocation (idempotent)."""
        began = time.monotonic()
        was_running = self._moto is not None
        if self._uvicorn is not None and self._uvicorn_thread is not None:
            self._uvicorn.should_exit = True
            self._uvicorn_thread.join(timeout=10)
        self._uvicorn = self._uvicorn_thread = None
        if self._api_socket is not None:
            self._api_socket.close()
            self._api_socket = None
        if self._reaper is not None:
            self._reaper.stop()
            self._reaper = None
        lambdas.uninstall()
        # Clients cached by the functions point at this cloud's moto: none may outlive it.
        lambdas.forget_modules()
        iam.uninstall()
        faults.uninstall()
        stepfunctions.uninstall()
        signatures.uninstall()
        moto_fixes.uninstall()
        metering.meter_dynamodb(None)
        capacity.detach(self.capacity)
        cloudformation.uninstall()
        if self._moto is not None:
            try:
                # Backends and config are process-wide: leave them as found for whatever runs next.
                self._post_moto("/moto-api/reset", None)
                if self._moto_config is not None:
                    self._post_moto("/moto-api/config", self._moto_config)
            except OSError:
                log.warning("could not reset moto", exc_info=True)
            self._moto.stop()
            self._moto = None
        self._clients.clear()
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        if was_running:
            log.info("local cloud stopped in %.2f s", time.monotonic() - began)

    def expire_ttl(self, now: float | None = None) -> int:
        """Run DynamoDB's TTL at `now` (epoch seconds, default the clock): how many items it removed."""
        return streams.expire(now)

    # ---------------------------------------------------------------------------------- pieces
    def _set_environment(self) -> None:
        self._saved_environ = dict(os.environ)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(
            {
                **FAKE_CREDENTIALS,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                # No shared config may add a profile, region or endpoint of a real account.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                # There is no X-Ray daemon locally.
                "POWERTOOLS_TRACE_DISABLED": "true",
                "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(S3_MEMORY_BYTES),
            }
        )

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto's request log would drown the local cloud's own output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.moto_port:
            # ThreadedMotoServer.start() waits forever when its port is taken: fail fast instead.
            _bound_socket(self.host, self.moto_port).close()
        server = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        server.start()
        self._moto = server
        self.moto_port = int(server.get_host_and_port()[1])
        os.environ["AWS_ENDPOINT_URL"] = self.moto_endpoint
        # Step Functions tasks call Lambda back on localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.moto_port)
        self._moto_config = self._post_moto("/moto-api/config", None, method="GET")
        self._post_moto("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

    def _post_moto(self, path: str, body: Any, method: str = "POST") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  # always our own loopback server
            self.moto_endpoint + path,
            data=data if method == "POST" else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read().decode() or "null"
        return json.loads(text) if text.lstrip().startswith(("{", "[")) else text

    def _apply_function_environment(self) -> None:
        stack = self.stack
        for logical_id in sorted(stack.functions, key=lambda name: name == self.api_function):
            function = stack.functions[logical_id]
            lambdas.apply_environment(function.environment)
            # Seeding imports the core from the layer, as the functions do.
            lambdas.extend_sys_path(lambdas.layer_search_path(function))
        for function in stack.functions.values():
            # Imported here, in one thread, not first in moto's request threads next to the caller's
            # own imports (see localcloud.preload). One that cannot be imported fails when invoked, as in Lambda.
            with contextlib.suppress(lambdas.HandlerError, ImportError):
                lambdas.load_function_module(function)
        api = stack.functions.get(self.api_function)
        if api is not None:
            lambdas.apply_environment(api.environment)

    def _enforce_iam(self) -> None:
        """From here on every function's AWS calls are checked against its own role (localcloud.iam)."""
        stack = self.stack
        owned = [f.arn for f in stack.functions.values()]
        owned += [
            f"arn:aws:s3:::{name}"
            for logical_id, name in stack.resources.items()
            if stack.resource_types[logical_id] == "AWS::S3::Bucket"
        ]
        for logical_id, principal in stack.principals.items():
            if stack.resource_types.get(logical_id) == "AWS::StepFunctions::StateMachine":
                iam.register_state_machine(principal, owned)
        iam.install()
        faults.install()

    def _listen(self) -> socket.socket:
        if self._api_socket is None:
            self._api_socket = _bound_socket(self.host, self.port)
            self.port = int(self._api_socket.getsockname()[1])
        return self._api_socket

    def serve_api(self) -> None:
        """Serve the api function's ASGI `app` with uvicorn and return once it listens (idempotent)."""
        if self._uvicorn is not None:
            return
        import uvicorn

        function = self.stack.functions.get(self.api_function)
        if function is None:
            raise LocalCloudError(f"the stack has no function {self.api_function}")
        module = lambdas.load_function_module(function)
        app = getattr(module, "app", None)
        if app is None:
            raise LocalCloudError(f"{function.code_dir}/{function.handler} has no module-level ASGI `app`")
        sock = self._listen()
        # uvicorn's loop owns the socket from here and closes it on shutdown.
        self._api_socket = None
        # API Gateway invokes the api function: every request runs under its role, within the HTTP API's
        # limits. Beside it, the local cloud's own fault-injection route (localcloud.faults), which AWS has not.
        served = metering.Invocations(iam.ServedAs(app, function.principal), function.logical_id, function.memory_size)
        throttle = stage_throttle(load_template(self.template), self.parameters)
        app = faults.ControlRoutes(ApiGatewayLimits(served, integration_timeout=self.api_timeout, throttle=throttle))
        config = uvicorn.Config(app, log_level=self.log_level, lifespan="auto", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
        thread.start()
        self._uvicorn, self._uvicorn_thread = server, thread
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive():
                sock.close()
                raise LocalCloudError("uvicorn stopped while starting (see its log above)")
            if time.monotonic() > deadline:
                raise LocalCloudError(f"uvicorn not listening after {self.startup_timeout:.0f} s")
            thread.join(timeout=0.01)
