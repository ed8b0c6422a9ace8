"""Which base URLs and secrets a job may name: refused without any DNS look-up."""

from __future__ import annotations

import pytest

from batchline.backends import base_url_problem, secret_problem

ALWAYS_REFUSED = [
    "ftp://models.example.com/v1",
    "file:///etc/passwd",
    "http:///v1",
    "models.example.com/v1",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.10.1:8000/v1",
    "http://[fe80::1]/v1",
    "http://[fe80::1%25eth0]/v1",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./",
    "http://0xa9.0xfe.0xa9.0xfe/",  # 169.254.169.254 in hex
    "http://2852039166/",  # 169.254.169.254 as one number
    "http://224.0.0.1/",
    "http://example.com:notaport/",
]
PRIVATE = [
    "http://127.0.0.1:8000/v1",
    "http://127.1/v1",
    "http://2130706433/v1",
    "http://localhost:8000/v1",
    "http://vllm.localhost/v1",
    "http://10.0.3.4/v1",
    "http://172.16.0.9/v1",
    "http://192.168.1.1/v1",
    "http://[::1]:8000/v1",
    "http://[fc00::5]/v1",
    "http://0.0.0.0:8000/v1",
]
PUBLIC = [
    "https://api.openai.com/v1",
    "http://vllm.internal.example:8000/v1",
    "https://8.8.8.8/v1",
    "http://[2606:4700::1]/v1",
]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_link_local_metadata_and_non_http_urls_are_always_refused(url: str, allow_private: bool) -> None:
    assert base_url_problem(url, allow_private=allow_private) is not None


@pytest.mark.parametrize("url", PRIVATE)
def test_loopback_and_private_addresses_only_when_the_stack_allows_them(url: str) -> None:
    assert base_url_problem(url, allow_private=False) is not None
    assert base_url_problem(url, allow_private=True) is None


@pytest.mark.parametrize("url", PUBLIC)
def test_public_hosts_are_allowed(url: str) -> None:
    assert base_url_problem(url, allow_private=False) is None


@pytest.mark.parametrize(
    ("name", "ok"),
    [("batchline/vllm-key", True), ("batchline/", False), ("other/key", False), ("prod/batchline/x", False)],
)
def test_a_secret_must_be_under_the_stacks_prefix(name: str, ok: bool) -> None:
    assert (secret_problem(name, prefix="batchline/") is None) is ok


def test_the_worker_answers_every_line_of_a_job_with_a_refused_base_url_as_an_error_line() -> None:
    """A job stored before the check at create existed: the worker sends nothing and reads no secret."""
    import asyncio

    from batchline.models import JobRecord, OpenAIProvider
    from batchline.providers import UPSTREAM_UNAVAILABLE, ProviderSettings, make_provider

    def no_secret(name: str) -> str:
        raise AssertionError(f"secret {name} read for a backend that is refused")

    job = JobRecord(
        id="job-1",
        tenant_id="t",
        model="m",
        provider=OpenAIProvider(type="openai", base_url="http://169.254.169.254/latest", api_key_secret="batchline/k"),
        created_at=0,
    )

    async def send() -> tuple[object, object]:
        refused = make_provider(job, secret=no_secret, settings=ProviderSettings(allow_private_backends=True))
        try:
            return await refused.send("/v1/chat/completions", {"messages": []}, deadline=float("inf")), refused
        finally:
            await refused.aclose()

    outcome, _ = asyncio.run(send())
    assert outcome.status_code is None  # type: ignore[attr-defined]
    assert outcome.error_code == UPSTREAM_UNAVAILABLE  # type: ignore[attr-defined]
    assert "169.254.169.254" in outcome.error_message and "base_url" in outcome.error_message  # type: ignore[attr-defined]
