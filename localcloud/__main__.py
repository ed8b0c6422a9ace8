"""`python -m localcloud [--port 8000] [--moto-port N] [--state FILE] [--account-concurrency N]`: run the local
cloud until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from localcloud.cloud import LocalCloud
from localcloud.deploy import DeployError
from localcloud.lambdas import NEW_ACCOUNT_CONCURRENCY
from localcloud.servers import LocalCloudError

SNIPPET = """\
from openai import OpenAI

client = OpenAI(base_url="{base_url}", api_key="{api_key}")
batch_file = client.files.create(file=open("requests.jsonl", "rb"), purpose="batch")
batch = client.batches.create(
    input_file_id=batch_file.id,
    endpoint="/v1/chat/completions",
    completion_window="24h",  # runs on the demo job, {job_id}: the project's default
)
print(client.batches.retrieve(batch.id).status)"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (PORT in the environment is the default port)."""
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port of the API (default: $PORT or 8000; 0 picks a free one)",
    )
    parser.add_argument("--moto-port", type=int, default=0, help="port of moto's server (default: a free one)")
    parser.add_argument(
        "--api-timeout",
        type=float,
        default=30.0,
        help="API Gateway's integration timeout in seconds (default: 30, as on AWS)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="a JSON file that keeps the demo API key, admin key and job id across restarts (make local: "
        ".localcloud/state.json); made on the first start",
    )
    parser.add_argument(
        "--account-concurrency",
        type=int,
        default=NEW_ACCOUNT_CONCURRENCY,
        help=f"Lambda's concurrency quota of the account (default: {NEW_ACCOUNT_CONCURRENCY}, a brand-new "
        "account's); Lambda keeps 100 of it unreserved",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start, print where to connect, serve until a signal, stop."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every boto3 client would announce where it found credentials and endpoint.
    for noisy in ("botocore", "boto3", "samtranslator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before start-up, so a signal during it still ends in a clean stop.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    cloud = LocalCloud(
        port=args.port,
        moto_port=args.moto_port,
        log_level=args.log_level,
        api_timeout=args.api_timeout,
        state_file=args.state,
        account_concurrency=args.account_concurrency,
    )
    try:
        cloud.start()
    except (LocalCloudError, DeployError) as exc:
        print(f"localcloud: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        lines = [
            f"Base URL: {cloud.base_url}",
            f"API key: {cloud.api_key}",
            f"Job ID: {cloud.job_id}",
            f"Admin key: {cloud.admin_key}",
            "",
            SNIPPET.format(base_url=cloud.base_url, api_key=cloud.api_key, job_id=cloud.job_id),
            "",
            "Ready.",
        ]
        print("\n".join(lines), flush=True)
        logging.getLogger("localcloud").info(
            "started in %.2f s (moto on %s)", cloud.startup_seconds or 0, cloud.moto_endpoint
        )
        stop.wait()
    finally:
        cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
