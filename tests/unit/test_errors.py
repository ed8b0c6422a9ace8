"""The one mapping from domain errors to HTTP statuses and OpenAI's error body."""

import pytest

from batchline import errors


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (errors.InvalidRequest("bad", param="endpoint"), 422, "invalid_request_error"),
        (errors.NotFound("none"), 404, "not_found_error"),
        (errors.Conflict("twice"), 409, "invalid_request_error"),
        (errors.PayloadTooLarge("big"), 413, "invalid_request_error"),
        (errors.Unauthenticated("who"), 401, "authentication_error"),
        (errors.Forbidden("no"), 403, "permission_error"),
        (errors.RateLimited("slow"), 429, "rate_limit_error"),
        (errors.ServerError("ours"), 500, "server_error"),
    ],
)
def test_each_domain_error_has_its_status_and_type(exc: errors.BatchlineError, status: int, type_: str) -> None:
    got_status, body = errors.to_http(exc)
    assert got_status == status
    assert body == {"error": {"message": exc.message, "type": type_, "param": exc.param, "code": exc.code}}


def test_a_subclass_maps_like_its_parent() -> None:
    class FileGone(errors.NotFound):
        pass

    assert errors.to_http(FileGone("gone"))[0] == 404


def test_framework_statuses_get_the_matching_type() -> None:
    assert errors.status_body(404, "Invalid URL")["error"]["type"] == "not_found_error"
    assert errors.status_body(405, "Invalid URL")["error"]["type"] == "invalid_request_error"
    assert errors.status_body(503, "down")["error"]["type"] == "server_error"
