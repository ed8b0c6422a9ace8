"""Result lines are always UTF-8, whatever an upstream answered."""

from __future__ import annotations

import json

from batchline.providers import Outcome
from batchline.result_lines import FAILED, result_line, unsent_line


def test_an_upstream_answer_holding_a_lone_surrogate_still_makes_a_utf8_line() -> None:
    # An OpenAI-compatible server may answer JSON with an escaped lone surrogate: its decoded text
    # cannot be encoded as UTF-8; the line keeps it escaped instead of failing the worker.
    line = result_line("a", Outcome.answer(200, {"text": "x\ud800y", "usage": {}}))
    assert json.loads(line.decode("utf-8"))["response"]["body"]["text"] == "x\ud800y"


def test_non_ascii_text_stays_as_it_is() -> None:
    line = unsent_line("é", FAILED, "batch_req_1")
    assert "é".encode() in line
