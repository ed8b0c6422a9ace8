"""Benchmark the api function's cold start against a one-route FastAPI + Mangum app.

Run: .venv/bin/python benchmarks/bench_coldstart.py [--rounds N] [--json PATH]

Each run is a fresh interpreter, timed from its start to the handler's first answer: importing the
handler module (laid out as on Lambda: the function's code, then the layer) and answering one API
Gateway HTTP API event. The request is `events/api_get_file.json`, a GET without an API key: the real
handler answers it 401 without calling AWS (no DynamoDB or Secrets Manager here), after building what
every request builds (settings, store, authenticator). The minimal app answers the same event 401 from
its one route. Runs alternate (minimal, api, api traced, ...) so that the machine's noise falls on all
alike; each figure is the median.

Tracing: "api" runs with POWERTOOLS_TRACE_DISABLED=true, as the template sets it for Tracing=PassThrough;
"api traced" runs as Tracing=Active does on Lambda (LAMBDA_TASK_ROOT, a sampled _X_AMZN_TRACE_ID, the
X-Ray daemon's address, here a loopback UDP socket of ours that nobody reads).

Also measured: what bytecode is worth. Lambda cannot write __pycache__ in a layer or the function's
code, so a layer shipped without .pyc files (as SAM's python3.13 builder makes it) compiles every module
it imports at each cold start. "layer without .pyc" and "layer with .pyc" copy what the api handler
imports from this virtualenv (and the core) into a layer-like directory, without bytecode, or compiled
as layers/core/Makefile compiles the built layer; the function's own code is copied without bytecode in
both, as sam build ships it. And the built layer's size, from `.aws-sam/build` when present.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Row, json_argument, write_rows

ROOT = Path(__file__).resolve().parents[1]
EVENT = ROOT / "events" / "api_get_file.json"
LAYER = ROOT / ".aws-sam" / "build" / "CoreLayer" / "python"
TARGET = 1.3

# What the template gives the api function (Globals and its own variables), with fake AWS settings.
API_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_LAMBDA_FUNCTION_NAME": "batchline-ApiFunction",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "TABLE_NAME": "batchline-Table",
    "BUCKET_NAME": "batchline-files",
    "LOG_LEVEL": "INFO",
    "POWERTOOLS_SERVICE_NAME": "batchline",
    "POWERTOOLS_METRICS_NAMESPACE": "Batchline",
    "REQUESTS_PER_WORKER": "100",
    "MAX_UPLOAD_BYTES": "4194304",
    "ADMIN_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:batchline-admin",
    "KEY_HASH_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:batchline-pepper",
    "IDEMPOTENCY_TABLE": "batchline-Idempotency",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:batchline-batch",
    "REQUESTS_PER_SECOND": "100",
    "PROVIDER_SECRET_PREFIX": "batchline/",
    "ALLOW_PRIVATE_BACKENDS": "false",
    "PATH": os.environ.get("PATH", ""),
}

MINIMAL_APP = """
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mangum import Mangum

app = FastAPI()


@app.get("/v1/files/{file_id}")
def retrieve_file(file_id: str) -> JSONResponse:
    error = {"message": "No API key.", "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=401)


lambda_handler = Mangum(app, lifespan="off")
"""

# The child: import the handler, answer the event once, report. Timed by the parent from its spawn.
CHILD = """
import json, sys, time
began = time.perf_counter()
from app import lambda_handler
imported = time.perf_counter()
class Context:
    function_name = "batchline-ApiFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batchline-ApiFunction"
    memory_limit_in_mb = 1024
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/batchline-ApiFunction"
    log_stream_name = "2026/12/01/[$LATEST]0123456789abcdef"
    def get_remaining_time_in_millis(self):
        return 30000
with open(sys.argv[1], "rb") as event:
    answer = lambda_handler(json.load(event), Context())
answered = time.perf_counter()
traced = any(name.startswith("aws_xray_sdk") for name in sys.modules)
# CPU time since the process began: steadier than wall time where other work shares the machine.
print("ANSWERED " + json.dumps({"status": answer["statusCode"], "cpu_s": time.process_time(),
      "import_s": imported - began, "call_s": answered - imported, "modules": len(sys.modules), "xray": traced}),
      flush=True)
"""


def first_answer(code_dir: Path, env: dict[str, str], layer: Path = ROOT / "layers" / "core") -> dict[str, float]:
    """Seconds from spawning a fresh interpreter to its handler's first answer, and what it reported."""
    path = os.pathsep.join([str(code_dir), str(layer)])
    began = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603  # our own interpreter and code
        [sys.executable, "-c", CHILD, str(EVENT)],
        cwd=code_dir,
        env={**env, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    report = None
    # Powertools' metrics and logs go to stdout too: the answer is the line marked ANSWERED.
    for line in child.stdout:
        if line.startswith("ANSWERED "):
            seconds = time.perf_counter() - began
            report = json.loads(line.removeprefix("ANSWERED "))
            break
    child.stdout.read()
    if child.wait() != 0 or report is None:
        raise RuntimeError(f"the {code_dir.name} child failed (exit {child.returncode})")
    if report["status"] != 401:
        raise RuntimeError(f"the {code_dir.name} child answered {report['status']}, not 401")
    return {"seconds": seconds, **report}


def copy_as_shipped(api_env: dict[str, str], where: Path) -> tuple[Path, Path, Path]:
    """The api function's code and two layers of what its handler imports: without and with bytecode."""
    listing = (
        "import json, sys, app; print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
    )
    done = subprocess.run(  # noqa: S603  # our own interpreter and code
        [sys.executable, "-c", listing],
        cwd=ROOT / "functions" / "api",
        env={
            **api_env,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "api"), str(ROOT / "layers" / "core")]),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    roots = [Path(p) for p in sys.path if "site-packages" in p] + [ROOT / "layers" / "core"]
    tops: set[Path] = set()
    for file in filter(None, json.loads(done.stdout.splitlines()[-1])):
        for root in roots:
            if Path(file).is_relative_to(root):
                tops.add(root / Path(file).relative_to(root).parts[0])
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    code = where / "api"
    shutil.copytree(ROOT / "functions" / "api", code, ignore=ignore)
    bare, compiled = where / "layer-bare", where / "layer-compiled"
    for layer in (bare, compiled):
        layer.mkdir()
        for top in tops:
            if top.is_dir():
                shutil.copytree(top, layer / top.name, ignore=ignore)
            else:
                shutil.copy2(top, layer / top.name)
    compileall.compile_dir(
        compiled, quiet=1, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    return code, bare, compiled


# What is left of the api's extra import time, by package, and why its first answer needs it: what could
# be deferred was (boto3 and all it loads, the models' validators, the OpenAPI error entries' serializers,
# the routes of the routers the first request does not reach).
NEEDED = {
    "routes": "the api's route modules (FastAPI builds their routes when a request first reaches their router, "
    "routes/deferred.py: the first answer builds those of the files router)",
    "batchline": "the core's models (their classes; validators are built on first use) and what the first "
    "request builds (settings, store, authenticator)",
    "pydantic_settings": "the api's settings, read on every request",
    "aws_lambda_powertools": "the handler's Logger and Metrics",
}


def import_costs(kinds: dict[str, tuple[Path, dict[str, str], Path]]) -> tuple[str, str]:
    """Where the api handler's extra import time goes: -X importtime's own time of each module the minimal
    app does not import, summed by top-level package, largest first; and why the first answer needs the
    packages of NEEDED among them."""

    def own_times(kind: str) -> dict[str, int]:
        code_dir, env, layer = kinds[kind]
        done = subprocess.run(  # our own interpreter and code
            [sys.executable, "-X", "importtime", "-c", "import app"],
            cwd=code_dir,
            env={**env, "PYTHONPATH": os.pathsep.join([str(code_dir), str(layer)])},
            capture_output=True,
            text=True,
            check=True,
        )
        times = {}
        for line in done.stderr.splitlines():
            own, _, name = line.removeprefix("import time:").split("|")
            if own.strip().isdigit():
                times[name.strip()] = int(own)
        return times

    # The median of three runs of each, package by package: one run on a shared machine is noise.
    samples: dict[str, list[int]] = {}
    for _ in range(3):
        minimal, api = own_times("minimal"), own_times("api")
        run: dict[str, int] = {}
        for name, micros in api.items():
            if name not in minimal:
                run[name.split(".")[0]] = run.get(name.split(".")[0], 0) + micros
        for top, micros in run.items():
            samples.setdefault(top, []).append(micros)
    by_package = {top: statistics.median(values) for top, values in samples.items()}
    largest = sorted(by_package.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{name} {micros / 1000:.0f}" for name, micros in largest[:8])
    needed = "; ".join(f"{name} {micros / 1000:.0f} ms, {NEEDED[name]}" for name, micros in largest if name in NEEDED)
    return (
        f"import time the minimal app does not spend, by package (ms, -X importtime, median of 3): {shown}",
        f"left, each needed by the first answer: {needed}",
    )


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def layer_size() -> str:
    """What the built layer ships: its size unpacked and zipped, and its largest packages."""
    if not LAYER.is_dir():
        return "layer size: not measured (.aws-sam/build absent: run `.venv-sam/bin/sam build` first)"
    sizes: dict[str, int] = {}
    files, pycs = 0, 0
    for path in LAYER.rglob("*"):
        if path.is_file():
            top = path.relative_to(LAYER).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
            files += 1
            pycs += path.suffix == ".pyc"
    total = sum(sizes.values())
    with tempfile.TemporaryFile() as out:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(LAYER.rglob("*")):
                if path.is_file():
                    archive.write(path, Path("python") / path.relative_to(LAYER))
        zipped = out.tell()
    largest = sorted(((size, name) for name, size in sizes.items() if not name.endswith("-info")), reverse=True)
    shown = ", ".join(f"{name} {size / 1e6:.1f}" for size, name in largest[:8])
    return (
        f"layer: {total / 1e6:.1f} MB unpacked ({files:,} files, {pycs} .pyc), {zipped / 1e6:.1f} MB zipped; "
        f"largest (MB): {shown}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each kind, alternating (default 5)")
    json_argument(parser)
    args = parser.parse_args()

    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    api_dir = ROOT / "functions" / "api"
    lambda_env = {**API_ENV, "LAMBDA_TASK_ROOT": str(api_dir)}
    core = ROOT / "layers" / "core"
    untraced = {**lambda_env, "POWERTOOLS_TRACE_DISABLED": "true"}
    traced_env = {
        **lambda_env,
        "POWERTOOLS_TRACE_DISABLED": "false",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    # kind -> (the function's code, its environment, the layer)
    kinds: dict[str, tuple[Path, dict[str, str], Path]] = {
        "api": (api_dir, untraced, core),
        "api traced": (api_dir, traced_env, core),
    }
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        minimal_dir = Path(tmp) / "minimal"
        minimal_dir.mkdir()
        (minimal_dir / "app.py").write_text(MINIMAL_APP)
        kinds["minimal"] = (minimal_dir, lambda_env, core)
        # Nothing may write bytecode into the copies: Lambda's are read-only.
        shipped = {**untraced, "PYTHONDONTWRITEBYTECODE": "1"}
        code, bare, compiled = copy_as_shipped(untraced, Path(tmp))
        kinds["layer without .pyc"] = (code, {**shipped, "LAMBDA_TASK_ROOT": str(code)}, bare)
        kinds["layer with .pyc"] = (code, {**shipped, "LAMBDA_TASK_ROOT": str(code)}, compiled)
        order = ["minimal", "api", "api traced", "layer without .pyc", "layer with .pyc"]
        for kind in order:  # once each unmeasured: bytecode and the page cache warm
            first_answer(*kinds[kind])
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in order}
        for _ in range(args.rounds):
            for kind in order:
                runs[kind].append(first_answer(*kinds[kind]))
        costs, needed = import_costs(kinds)
    daemon.close()

    print(f"Python {sys.version.split()[0]}, {args.rounds} alternating runs each, medians:")
    for kind in order:
        result = runs[kind]
        print(
            f"  {kind:18} first answer {median(result, 'seconds') * 1000:6.0f} ms, CPU "
            f"{median(result, 'cpu_s') * 1000:4.0f} ms (import "
            f"{median(result, 'import_s') * 1000:4.0f} ms, first call {median(result, 'call_s') * 1000:4.0f} ms, "
            f"{median(result, 'modules'):.0f} modules, X-Ray SDK loaded: {result[0]['xray']})"
        )
    minimal, api = median(runs["minimal"], "seconds"), median(runs["api"], "seconds")
    traced = median(runs["api traced"], "seconds")
    ratio = api / minimal
    cpu = {kind: median(runs[kind], "cpu_s") for kind in order}
    size = layer_size()
    print(f"  {size}")
    print(f"  {costs}")
    print(f"  {needed}")
    extra_modules = median(runs["api"], "modules") - median(runs["minimal"], "modules")
    traced_modules = median(runs["api traced"], "modules") - median(runs["api"], "modules")
    bare_s, compiled_s = median(runs["layer without .pyc"], "seconds"), median(runs["layer with .pyc"], "seconds")
    detail = (
        f"api {api * 1000:.0f} ms (import {median(runs['api'], 'import_s') * 1000:.0f} ms, first call "
        f"{median(runs['api'], 'call_s') * 1000:.0f} ms) vs minimal {minimal * 1000:.0f} ms, medians of "
        f"{args.rounds}; CPU time {cpu['api'] * 1000:.0f} ms vs {cpu['minimal'] * 1000:.0f} ms, "
        f"{cpu['api'] / cpu['minimal']:.2f}x; {extra_modules:.0f} more modules than the minimal app. As shipped: "
        f"a layer without .pyc {bare_s * 1000:.0f} ms (CPU {cpu['layer without .pyc'] * 1000:.0f} ms), with .pyc "
        f"(layers/core/Makefile) {compiled_s * 1000:.0f} ms (CPU {cpu['layer with .pyc'] * 1000:.0f} ms). {size}"
    )
    if ratio > TARGET:
        missed = f"missed by {ratio / TARGET - 1:.0%} ({(api - TARGET * minimal) * 1000:.0f} ms); {costs}; {needed}. "
        detail = missed + detail
    rows = [
        Row(
            goal="api function cold start / a one-route FastAPI+Mangum app (tracing off)",
            value=round(ratio, 2),
            unit="x",
            target=f"≤ {TARGET}x",
            met=ratio <= TARGET,
            baseline=f"one-route FastAPI+Mangum app, first answer {minimal * 1000:.0f} ms",
            detail=detail,
        ),
        Row(
            goal="api function cold start, tracing on / tracing off",
            value=round(traced / api, 2),
            unit="x",
            target="measured (no target)",
            met=True,
            baseline=f"api with tracing off, first answer {api * 1000:.0f} ms",
            detail=(
                f"tracing on (Tracing=Active): {traced * 1000:.0f} ms ({(traced - api) * 1000:+.0f} ms; CPU time "
                f"{cpu['api traced'] * 1000:.0f} ms vs {cpu['api'] * 1000:.0f} ms, "
                f"{cpu['api traced'] / cpu['api']:.2f}x; import "
                f"{median(runs['api traced'], 'import_s') * 1000:.0f} ms, {traced_modules:+.0f} modules: the X-Ray "
                f"SDK and what its botocore patch loads), {traced / minimal:.2f}x the minimal app"
            ),
        ),
    ]
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
