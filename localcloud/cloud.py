"""LocalCloud: moto's server, the stack from template.yaml, in-process Lambdas and the API on uvicorn.

It composes the pieces and orders them: the process's environment (localcloud.environment), the two servers
(localcloud.servers), the emulation's patches (localcloud.emulation), the deploy (localcloud.deploy) and the
demo data (localcloud.seed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from localcloud import capacity, emulation, faults, lambdas, streams
from localcloud.apigateway import INTEGRATION_TIMEOUT_SECONDS, http_api
from localcloud.deploy import DeployedStack, deploy
from localcloud.environment import REGION, FakeEnvironment, return_large_buffers
from localcloud.servers import ApiServer, LocalCloudError, MotoServer
from localcloud.template import load_template

__all__ = ["ROOT", "LocalCloud", "LocalCloudError"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


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
        self.template = Path(template) if template else ROOT / "template.yaml"
        self.stack_name = stack_name
        # Its fake upstreams listen on loopback, which the stack refuses unless told otherwise.
        self.parameters = {"AllowPrivateBackends": "true", **(parameters or {})}
        self.api_function = api_function
        self.table_resource = table_resource
        self.serve_api_on_start = serve_api
        self.seed_on_start = seed
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
        self.seeded: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self._environment = FakeEnvironment()
        self._moto = MotoServer(host, moto_port or 0)
        self._api = ApiServer(host, port or 0, log_level=log_level, startup_timeout=startup_timeout)
        self._reaper: streams.Reaper | None = None
        self._stack: DeployedStack | None = None

    # --------------------------------------------------------------------------------- properties
    @property
    def port(self) -> int:
        """The API's port (the one asked for, or the one given once it listens)."""
        return self._api.port

    @property
    def moto_port(self) -> int:
        """moto's port (the one asked for, or the one given once it runs)."""
        return self._moto.port

    @property
    def moto_endpoint(self) -> str:
        """http://127.0.0.1:<moto port>, what AWS_ENDPOINT_URL is set to."""
        return self._moto.endpoint

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
        return self._moto.client(service, **kwargs)

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
                self._api.listen()
            self._environment.apply()
            return_large_buffers()
            self._moto.start()
            emulation.install(
                self.capacity,
                account_concurrency=self.account_concurrency,
                retry_interval_scale=self.retry_interval_scale,
                wait_scale=self.wait_scale,
            )
            self._stack = deploy(
                self.template,
                self.client,
                stack_name=self.stack_name,
                parameters=self.parameters,
                region=REGION,
                timeout=self.startup_timeout,
            )
            emulation.load_functions(self._stack, self.api_function)
            emulation.enforce_iam(self._stack)
            if self.ttl_interval:
                self._reaper = streams.Reaper(self.ttl_interval)
                self._reaper.start()
            if self.seed_on_start:
                # Imported here: it needs the core, which is on sys.path only once the functions are loaded.
                from localcloud.seed import seed_demo_data

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
        was_running = self._moto.running
        self._api.stop()
        if self._reaper is not None:
            self._reaper.stop()
            self._reaper = None
        emulation.uninstall(self.capacity)
        self._moto.stop()
        self._environment.restore()
        if was_running:
            log.info("local cloud stopped in %.2f s", time.monotonic() - began)

    def expire_ttl(self, now: float | None = None) -> int:
        """Run DynamoDB's TTL at `now` (epoch seconds, default the clock): how many items it removed."""
        return streams.expire(now)

    def serve_api(self) -> None:
        """Serve the api function's ASGI `app` with uvicorn and return once it listens (idempotent)."""
        if self._api.serving:
            return
        function = self.stack.functions.get(self.api_function)
        if function is None:
            raise LocalCloudError(f"the stack has no function {self.api_function}")
        module = lambdas.load_function_module(function)
        app = getattr(module, "app", None)
        if app is None:
            raise LocalCloudError(f"{function.code_dir}/{function.handler} has no module-level ASGI `app`")
        front = http_api(
            app, function, load_template(self.template), self.parameters, integration_timeout=self.api_timeout
        )
        # Beside API Gateway, the local cloud's own fault-injection route (localcloud.faults), which AWS has not.
        self._api.serve(faults.ControlRoutes(front))
