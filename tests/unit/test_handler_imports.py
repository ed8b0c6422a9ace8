"""A handler imports what its work needs, and nothing for work it never does: each import is cold start time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_tracing import run_in_function

LOADED = "import sys, app; print(sorted({m.split('.')[0] for m in sys.modules} & {%s}))"


@pytest.mark.parametrize("function", ["api", "plan", "finalize", "ingest", "sweeper"])
def test_a_handler_that_never_calls_a_model_does_not_import_an_http_client(function: str) -> None:
    # Given a handler that calls AWS only (aiohttp is the providers' client, over 0.5 s to import)
    # When it is imported, Then no HTTP client but botocore's is
    assert run_in_function(function, LOADED % "'aiohttp', 'httpx', 'httpcore', 'h11'", {}) == "[]"


def test_the_api_handler_does_not_import_what_only_other_functions_use() -> None:
    # Given the api function, which validates no batch file and runs no chunk
    code = "import sys, app; print(sorted(m for m in sys.modules if m.startswith(('batchline.providers', "
    code += "'batchline.planning', 'batchline.worker', 'batchline.finalizing', 'batchline.rules'))))"
    # When its handler is imported, Then none of that is
    assert run_in_function("api", code, {}) == "[]"


# Answering a request that never reaches AWS: a GET without an API key, which the api answers 401.
FIRST_ANSWER = """
import json, sys
from pathlib import Path
import app
class Context:
    function_name = "batchline-api"; function_version = "$LATEST"; memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batchline-api"
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self): return 30000
event = json.loads(Path("../../events/api_get_file.json").read_text())
status = app.lambda_handler(event, Context())["statusCode"]
print(json.dumps({"status": status, "loaded": sorted(m for m in sys.modules if m in %s or m.split(".")[0] in %s)}))
"""


def after_first_answer(probe: str) -> dict[str, Any]:
    """Run FIRST_ANSWER in the api function, then `probe` (which prints JSON) instead of its own print."""
    code = FIRST_ANSWER.split("print(", 1)[0] + probe
    answer: dict[str, Any] = json.loads(run_in_function("api", code, {"POWERTOOLS_TRACE_DISABLED": "true"}))
    return answer


def test_the_api_answers_a_request_that_never_reaches_aws_without_importing_the_aws_sdk() -> None:
    # Given the api function with tracing off (with it on, X-Ray patches botocore, which imports it),
    # and what boto3 brings with it: over 100 ms of its cold start (s3transfer brings multiprocessing)
    modules, packages = ["botocore.session", "botocore.client"], ["boto3", "s3transfer", "urllib3", "multiprocessing"]
    code = FIRST_ANSWER % (modules, packages)
    # When it is imported and answers its first request, one refused before any AWS call
    answer = json.loads(run_in_function("api", code, {"POWERTOOLS_TRACE_DISABLED": "true"}))
    # Then it answered 401 without having imported any of that (botocore.exceptions is cheap and stays)
    assert answer == {"status": 401, "loaded": []}


def test_the_api_builds_no_serializer_for_its_documented_error_answers() -> None:
    # Given the api's routes, each documenting OpenAI's error body for five or six error statuses: FastAPI
    # builds a pydantic serializer for each `{"model": ...}` response there, used only to write the
    # OpenAPI document (the exception handlers answer errors): over 150 at import, and again for a
    # router's routes when a request first reaches them
    code = "import app\n"
    code += "from routes import admin, batches, files, jobs, models, uploads\n"
    code += "routes = [r for m in (admin, batches, files, jobs, models, uploads) for r in m.router.routes]\n"
    code += "routes += [c for r in app.app.routes for c in getattr(r, 'effective_route_contexts', list)()]\n"
    code += "print(len(routes), sorted({s for r in routes for s in r.response_fields}))"
    # When the handler is imported, Then no route, as declared or as served, holds one
    count, fields = run_in_function("api", code, {}).split(" ", 1)
    assert int(count) > 50
    assert fields == "[]"


def test_the_api_builds_no_model_its_first_answer_does_not_use() -> None:
    # Given the core's models (every boundary of every function) and settings (one per function): a
    # function uses a few; building each one's validator and serializer at import was 30 ms of the api's
    # cold start
    probe = (
        "import pydantic, batchline.config as config, batchline.models as models\n"
        "found = [getattr(m, n) for m in (config, models) for n in dir(m)]\n"
        "ours = {c for c in found if isinstance(c, type) and issubclass(c, pydantic.BaseModel)\n"
        "    and c.__module__.startswith('batchline.')}\n"
        "built = [c for c in ours if c.__pydantic_complete__]\n"
        "print(json.dumps({'status': status, 'models': len(ours), 'built': sorted(c.__name__ for c in built)}))\n"
    )
    # When the api is imported and answers a request without an API key (401)
    answer = after_first_answer(probe)
    # Then of them only the api's settings were built, besides the request bodies (built at import for
    # FastAPI's sake, not their parts nor the answers that extend them) and the generic list envelope
    # (pydantic builds it to make a route's `Page[FileObject]`): FastAPI builds its own for the answers
    assert answer["status"] == 401 and answer["models"] > 40
    bodies = ["BatchCreate", "JobCreate", "Strict", "TenantCreate", "TenantUpdate", "UploadComplete", "UploadCreate"]
    assert answer["built"] == sorted(["ApiSettings", "Page", *bodies])


def test_the_api_builds_only_the_routes_of_the_router_its_first_request_reaches() -> None:
    # Given the api's routes, about 2 ms each to build (a validator for each parameter, their answers'
    # serializers), which FastAPI builds where declared and again for the app when a request first
    # reaches their router: built at import, that was over 50 ms of the api's cold start
    probe = (
        "from routes import admin, batches, files, jobs, models, uploads\n"
        "routes = [r for m in (admin, batches, files, jobs, models, uploads) for r in m.router.routes]\n"
        "built = sorted({r.path for r in routes if 'dependant' in vars(r)})\n"
        "print(json.dumps({'status': status, 'routes': len(routes), 'built': built}))\n"
    )
    # When the api is imported and answers GET /v1/files/{file_id} without an API key (401)
    answer = after_first_answer(probe)
    # Then only the files router's routes were built, for that request
    assert answer["status"] == 401 and answer["routes"] > 25
    assert answer["built"] == ["/v1/files", "/v1/files/{file_id}", "/v1/files/{file_id}/content"]


def test_a_deferred_route_whose_declaration_is_wrong_fails_at_every_read_not_only_the_first() -> None:
    # A failed build had already set some of the route's attributes: the next read found a half-built route.
    code = (
        "import json\n"
        "from routes.deferred import DeferredRoute\n"
        "class NotAModel: pass\n"
        "def endpoint(n: int) -> int: return n\n"
        "route = DeferredRoute('/n', endpoint, response_model=NotAModel, methods=['GET'])\n"
        "errors = []\n"
        "for name in ('dependant', 'dependant', 'response_field'):\n"
        "    try:\n"
        "        getattr(route, name)\n"
        "        errors.append(None)\n"
        "    except Exception as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(json.dumps(errors))\n"
    )
    assert json.loads(run_in_function("api", code, {})) == ["FastAPIError"] * 3
