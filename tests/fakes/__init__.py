"""Loopback fakes of upstream services for tests."""

from tests.fakes.openai_server import FakeOpenAI, Fault, RecordedRequest, fake_answer, fake_openai

__all__ = ["FakeOpenAI", "Fault", "RecordedRequest", "fake_answer", "fake_openai"]
