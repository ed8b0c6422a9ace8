"""A template's local files put where CloudFormation expects them: code zipped into a bucket, definitions inlined.

What `sam package` does before a deploy, offline: each function's CodeUri and layer's ContentUri folder
becomes a deterministic zip in a moto bucket, and each state machine's DefinitionUri file its Definition.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

from localcloud.template import TemplateError, loads_template

_SKIPPED_IN_ZIPS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".aws-sam"})


def zip_dir(folder: Path) -> bytes:
    """A deterministic zip of a folder (sorted, fixed timestamps; caches and bytecode left out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part in _SKIPPED_IN_ZIPS for part in relative.parts) or path.suffix == ".pyc":
                continue
            if path.is_file():
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def package_code(sam: dict[str, Any], template_dir: Path, s3: Any, bucket: str) -> dict[str, Path]:
    """Upload local CodeUri/ContentUri folders to `bucket` and point the SAM template at them."""
    code_dirs: dict[str, Path] = {}
    global_uri = sam.get("Globals", {}).get("Function", {}).get("CodeUri")
    for logical_id, resource in sam.get("Resources", {}).items():
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            prop = "CodeUri"
        elif kind == "AWS::Serverless::LayerVersion":
            prop = "ContentUri"
        else:
            continue
        props = resource.setdefault("Properties", {})
        uri = props.get(prop, global_uri if prop == "CodeUri" else None)
        if props.get("InlineCode") or props.get("ImageUri") or not isinstance(uri, str):
            continue
        if uri.startswith("s3://"):
            continue
        folder = (template_dir / uri).resolve()
        if not folder.is_dir():
            raise TemplateError(f"{logical_id}: {prop} {uri!r} is not a folder next to the template")
        data = zip_dir(folder)
        key = f"{logical_id}/{hashlib.sha256(data).hexdigest()}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        props[prop] = {"Bucket": bucket, "Key": key} if prop == "CodeUri" else f"s3://{bucket}/{key}"
        code_dirs[key] = folder
    return code_dirs


def inline_definitions(sam: dict[str, Any], template_dir: Path) -> None:
    """Replace each state machine's local DefinitionUri file by its content as Definition."""
    for logical_id, resource in sam.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties", {})
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str) or uri.startswith("s3://"):
            continue
        path = (template_dir / uri).resolve()
        if not path.is_file():
            raise TemplateError(f"{logical_id}: DefinitionUri {uri!r} is not a file next to the template")
        # JSON is YAML; the CloudFormation loader also accepts short tags in a YAML definition.
        props["Definition"] = loads_template(path.read_text(encoding="utf-8"))
        del props["DefinitionUri"]
