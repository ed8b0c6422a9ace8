"""Validate every state machine of template.yaml with asl-validator, as written and as deployed.

As written, the definition's `${...}` placeholders are plain strings; CloudFormation replaces them
with the DefinitionSubstitutions before Step Functions sees the definition, so that form (with example
values for the stack's resources) is validated too, including every ARN check.
Run from the repository root: `python tools/asl/check.py` (make check does).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from localcloud.intrinsics import Stack  # noqa: E402  # after the path is set
from localcloud.template import load_template  # noqa: E402

VALIDATOR = ROOT / "tools" / "asl" / "node_modules" / ".bin" / "asl-validator"
STATE_MACHINES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")


def substituted(definition: str, substitutions: dict[str, str]) -> str:
    """The definition as CloudFormation hands it to Step Functions; fails on a placeholder left over."""
    for key, value in substitutions.items():
        definition = definition.replace("${" + key + "}", value)
    left = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition)))
    if left:
        raise SystemExit(f"no DefinitionSubstitutions for {', '.join(left)}")
    return definition


def validate(path: Path, label: str) -> bool:
    answer = subprocess.run([str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True)  # noqa: S603
    print(f"{label}: {(answer.stdout + answer.stderr).strip()}")
    return answer.returncode == 0


def main() -> int:
    template = load_template(ROOT / "template.yaml")
    stack = Stack(template)
    ok = True
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] not in STATE_MACHINES:
            continue
        props = resource["Properties"]
        path = ROOT / props["DefinitionUri"]
        ok &= validate(path, f"{logical_id} as written")
        values = {key: str(stack.resolve(value)) for key, value in (props.get("DefinitionSubstitutions") or {}).items()}
        definition = substituted(path.read_text(), values)
        json.loads(definition)
        with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as out:
            out.write(definition)
        try:
            ok &= validate(Path(out.name), f"{logical_id} with its substitutions")
        finally:
            Path(out.name).unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
