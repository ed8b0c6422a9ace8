"""`make demo` runs a batch to completion and shows it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.conftest import ROOT


def test_the_demo_completes_a_generated_batch_and_prints_the_batch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "localcloud.demo", "--lines", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "First output lines:" in done.stdout
    batch = json.loads(done.stdout.split("Batch:\n", 1)[1])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
