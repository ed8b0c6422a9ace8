"""docs/deploy.md as a newcomer follows it: every command not marked AWS-only runs, in order, on the local cloud."""

from __future__ import annotations

import json
import os
import re
import subprocess

from localcloud.template import load_template
from tests.e2e.conftest import ROOT, LocalCloudProcess

GUIDE = ROOT / "docs" / "deploy.md"
BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
AWS_ONLY = "# AWS-only"


def blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text())


def test_every_command_of_the_guide_runs_on_the_local_cloud_or_is_marked_aws_only(
    local_cloud: LocalCloudProcess,
) -> None:
    runnable = [block for block in blocks() if not block.startswith(AWS_ONLY)]
    assert len(runnable) >= 3 and len(runnable) < len(blocks())
    # One shell, as a reader's terminal: what a block sets, the next uses.
    script = "set -euo pipefail\n" + "\n".join(runnable) + '\necho "batch ok: $FILE_ID $JOB_ID"\n'
    env = {**os.environ, "BASE_URL": local_cloud.base_url, "ADMIN_KEY": local_cloud.admin_key}
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603, S607
    assert done.returncode == 0, done.stderr + done.stdout
    created, ok, _ = done.stdout.rpartition("batch ok: file-")
    assert ok, done.stdout
    batch = json.loads(created)  # the last command's answer: the created batch
    assert batch["object"] == "batch" and batch["status"] in ("validating", "in_progress", "completed")


def test_the_guide_explains_every_parameter_with_its_default() -> None:
    text = GUIDE.read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", text, re.M))
    declared = load_template(ROOT / "template.yaml")["Parameters"]
    assert {name: str(spec["Default"]) for name, spec in declared.items()} == rows


def test_the_readme_links_the_guide_on_its_first_screen() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "docs/deploy.md" in first_screen
