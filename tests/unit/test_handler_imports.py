"""A handler imports what its work needs, and nothing for work it never does: each import is cold start time."""

from __future__ import annotations

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
