"""The API's documents work offline: /docs and /redoc load nothing from another host."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

# Every src= and href= of the page, and every URL its inline script names.
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documents_load_only_from_the_api_itself(api: TestClient, page: str) -> None:
    answer = api.get(page)
    assert answer.status_code == 200
    references = [a or b for a, b in _REFERENCES.findall(answer.text)]
    assert references, answer.text[:500]
    elsewhere = [r for r in references if re.match(r"(?:https?:)?//", r)]
    assert elsewhere == []
    # And each of them is served (the scripts are large: Swagger UI's bundle is over a megabyte).
    for reference in references:
        fetched = api.get(reference)
        assert fetched.status_code == 200, reference
        assert fetched.content, reference


def test_swagger_ui_reads_openapi_3_1(api: TestClient) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI reads from version 5 on."""
    assert api.get("/openapi.json").json()["openapi"].startswith("3.1")
    page = api.get("/docs").text
    script = next(r for r in re.findall(r'src="([^"]+)"', page) if r.endswith("swagger-ui-bundle.js"))
    bundle = api.get(script).text
    assert re.search(r'"5\.\d+\.\d+"', bundle)
