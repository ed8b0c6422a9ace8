"""The local cloud as `make local` starts it: `python -m localcloud` in a subprocess, used over HTTP.

A subprocess, not LocalCloud in this process: moto's backends are process-wide, and e2e tests must see
only what a real client sees.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from localcloud import LocalCloud
from localcloud.preload import preload_sdk

# Before any test's threads (or the in-process cloud's) use the SDK (see localcloud.preload).
preload_sdk()

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
FIELDS = {"Base URL": "base_url", "API key": "api_key", "Job ID": "job_id", "Admin key": "admin_key"}


@dataclass
class LocalCloudProcess:
    """A running `python -m localcloud`: where to reach it, its keys, and its recent output."""

    base_url: str
    api_key: str
    job_id: str
    admin_key: str
    process: subprocess.Popen[str]
    output: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    # Every line since start, so a test can look for tracebacks in what it caused.
    history: list[str] = field(default_factory=list)

    def recent_output(self) -> str:
        """The last lines the process printed (stdout and stderr), for failure messages."""
        return "\n".join(self.output)

    def lines_since(self, mark: int) -> list[str]:
        """The lines printed after `mark` (a previous `len(history)`)."""
        return self.history[mark:]


def _pump(stream: object, lines: queue.Queue[str | None], output: deque[str], history: list[str]) -> None:
    # Reads until EOF: after Ready the pipe must still be drained, or a chatty server would block.
    for line in stream:  # type: ignore[attr-defined]
        output.append(line.rstrip("\n"))
        history.append(line.rstrip("\n"))
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[LocalCloudProcess]:
    """Start the local cloud on a free port, wait for `Ready.`, and stop it after the session."""
    yield from local_cloud_process()


def local_cloud_process(*options: str, environment: Mapping[str, str] | None = None) -> Iterator[LocalCloudProcess]:
    """`python -m localcloud --port 0 [options]` until `Ready.`, yielded, then stopped.

    `environment`: variables the functions read beyond the template's (as settings a stack's functions
    would be given), for this cloud alone.
    """
    env = {
        **os.environ,
        **(environment or {}),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AWS_PROFILE", None)
    # Port 0: the local cloud binds a free port itself and prints it, so no other process can take it
    # between choosing and binding.
    process = subprocess.Popen(  # noqa: S603  # our own interpreter and module; options from tests only
        [sys.executable, "-m", "localcloud", "--port", "0", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    output: deque[str] = deque(maxlen=500)
    history: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines, output, history), daemon=True).start()

    values: dict[str, str] = {}
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"local cloud not ready after {STARTUP_TIMEOUT:.0f} s:\n" + "\n".join(output))
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"local cloud exited ({process.wait()}) before Ready.:\n" + "\n".join(output))
            if line == "Ready.":
                break
            label, sep, value = line.partition(": ")
            if sep and label in FIELDS:
                values[FIELDS[label]] = value.strip()
        missing = set(FIELDS.values()) - set(values)
        if missing:
            pytest.fail(f"local cloud did not print {sorted(missing)}:\n" + "\n".join(output))
        cloud = LocalCloudProcess(process=process, output=output, history=history, **values)
    except BaseException:
        _stop(process)
        raise
    try:
        yield cloud
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def cloud() -> Iterator[LocalCloud]:
    """The local cloud in this process, for runs whose faults a test injects into the real handlers.

    Small chunks and short timeouts keep runs fast; the values reach the functions as the template's
    parameters and the workers' environment would in AWS.
    """
    tuning = {"REQUEST_TIMEOUT": "1.0", "MAX_ATTEMPTS": "4", "STATUS_CHECK_INTERVAL": "0.1"}
    saved = {name: os.environ.get(name) for name in tuning}
    os.environ.update(tuning)
    try:
        # Retry intervals a hundredth of AWS's: retries still happen, in order, only sooner.
        with LocalCloud(port=0, parameters={"LinesPerChunk": "40"}, retry_interval_scale=0.01) as running:
            yield running
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
