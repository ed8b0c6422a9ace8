"""The two servers of the local cloud on loopback: moto's (every AWS endpoint) and uvicorn's (the API).

Each is started, waited for and stopped here; what they serve is decided by LocalCloud (localcloud.cloud).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.request
from typing import Any

import boto3

from localcloud.environment import FAKE_CREDENTIALS, REGION

log = logging.getLogger(__name__)


class LocalCloudError(Exception):
    """The local cloud could not start."""


def bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port), or LocalCloudError if it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LocalCloudError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


class MotoServer:
    """moto's ThreadedMotoServer with Step Functions execution on, and boto3 clients for it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._config: dict[str, Any] | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """http://127.0.0.1:<moto port>, what AWS_ENDPOINT_URL is set to."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether it was started and not stopped since."""
        return self._server is not None

    def start(self) -> None:
        """Start the server and point os.environ at it (AWS_ENDPOINT_URL, MOTO_PORT)."""
        from moto.server import ThreadedMotoServer

        # moto's request log would drown the local cloud's own output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.port:
            # ThreadedMotoServer.start() waits forever when its port is taken: fail fast instead.
            bound_socket(self.host, self.port).close()
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        self.port = int(server.get_host_and_port()[1])
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint
        # Step Functions tasks call Lambda back on localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.port)
        self._config = self.post("/moto-api/config", None, method="GET")
        self.post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

    def stop(self) -> None:
        """Reset moto's backends and config and stop the server (idempotent); cached clients are dropped."""
        if self._server is not None:
            try:
                # Backends and config are process-wide: leave them as found for whatever runs next.
                self.post("/moto-api/reset", None)
                if self._config is not None:
                    self.post("/moto-api/config", self._config)
            except OSError:
                log.warning("could not reset moto", exc_info=True)
            self._server.stop()
            self._server = None
        self._clients.clear()

    def post(self, path: str, body: Any, method: str = "POST") -> Any:
        """Call one of moto's own /moto-api routes: its answer, parsed when it is JSON."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  # always our own loopback server
            self.endpoint + path,
            data=data if method == "POST" else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read().decode() or "null"
        return json.loads(text) if text.lstrip().startswith(("{", "[")) else text

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for this server (cached per service when no kwargs are given)."""
        if kwargs:
            return self._new_client(service, **kwargs)
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]

    def _new_client(self, service: str, **kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            **kwargs,
        }
        return boto3.client(service, **options)


class ApiServer:
    """uvicorn serving one ASGI app on a socket bound beforehand (so a taken port fails before the deploy)."""

    def __init__(self, host: str, port: int, *, log_level: str, startup_timeout: float) -> None:
        self.host = host
        self.port = port
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def serving(self) -> bool:
        """Whether `serve` has run and `stop` not since."""
        return self._server is not None

    def listen(self) -> socket.socket:
        """Bind the API's socket now (idempotent): its port is known from here."""
        if self._socket is None:
            self._socket = bound_socket(self.host, self.port)
            self.port = int(self._socket.getsockname()[1])
        return self._socket

    def serve(self, app: Any) -> None:
        """Serve `app` and return once uvicorn listens."""
        import uvicorn

        sock = self.listen()
        # uvicorn's loop owns the socket from here and closes it on shutdown.
        self._socket = None
        config = uvicorn.Config(app, log_level=self.log_level, lifespan="auto", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive():
                sock.close()
                raise LocalCloudError("uvicorn stopped while starting (see its log above)")
            if time.monotonic() > deadline:
                raise LocalCloudError(f"uvicorn not listening after {self.startup_timeout:.0f} s")
            thread.join(timeout=0.01)

    def stop(self) -> None:
        """Stop serving and close a socket bound but never served (idempotent)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
