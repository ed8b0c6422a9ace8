"""Request models: the contract's rules that need no storage."""

import pytest
from pydantic import ValidationError

from batchline.models import BatchCreate, JobRecord

BASE = {
    "input_file_id": "file-a",
    "endpoint": "/v1/chat/completions",
    "completion_window": "24h",
    "job_id": "job-1",
}


@pytest.mark.parametrize("endpoint", ["/v1/responses", "v1/responses"])
def test_endpoint_is_canonical_with_or_without_slash(endpoint: str) -> None:
    assert BatchCreate.model_validate({**BASE, "endpoint": endpoint}).endpoint == "/v1/responses"


@pytest.mark.parametrize(
    "metadata",
    [{f"k{i}": "v" for i in range(16)}, {"k" * 64: "v" * 512}, {}],
)
def test_metadata_at_the_limits_is_accepted(metadata: dict[str, str]) -> None:
    assert BatchCreate.model_validate({**BASE, "metadata": metadata}).metadata == metadata


@pytest.mark.parametrize(
    "metadata",
    [{f"k{i}": "v" for i in range(17)}, {"k" * 65: "v"}, {"k": "v" * 513}, {"k": 3}, ["k"]],
)
def test_metadata_over_the_limits_is_refused(metadata: object) -> None:
    with pytest.raises(ValidationError) as info:
        BatchCreate.model_validate({**BASE, "metadata": metadata})
    assert info.value.errors()[0]["loc"][0] == "metadata"


@pytest.mark.parametrize("seconds", [3599, 2_592_001])
def test_output_expiry_outside_range_is_refused(seconds: int) -> None:
    with pytest.raises(ValidationError):
        BatchCreate.model_validate({**BASE, "output_expires_after": {"anchor": "created_at", "seconds": seconds}})


def test_a_job_reads_back_from_its_stored_form() -> None:
    stored = {
        "pk": "job-1",
        "sk": "job",
        "id": "job-1",
        "object": "job",
        "tenant": "tenant_a",
        "model": "m",
        "provider": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_secret": None},
        "created_at": 1,
    }
    job = JobRecord.model_validate(stored)
    assert job.provider.type == "openai"
    assert job.sla.max_concurrency == 50
    assert job.allowed_endpoints == ["/v1/chat/completions"]
