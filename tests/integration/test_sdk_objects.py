"""Every object the API answers validates, strictly, with the newest openai SDK's own model of it.

The SDK parses answers leniently; a field it declares required, or of another type, is a client's
AttributeError later. Strict validation here is what `model_validate` of the SDK's type would refuse.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai import BaseModel as SdkModel
from openai.types import Batch, FileDeleted, FileObject, Model, Upload
from openai.types.uploads import UploadPart

from tests.integration.conftest import Tenant
from tests.integration.test_api_batches import request_body
from tests.integration.test_api_files import JSONL, upload


def strictly(sdk_type: type[SdkModel], answer: Any) -> Any:
    assert answer.status_code == 200, answer.text
    return sdk_type.model_validate(answer.json(), strict=True)


def page_of(sdk_type: type[SdkModel], answer: Any) -> list[Any]:
    """A list page: OpenAI's envelope, and each item the SDK's type."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list" and isinstance(body["has_more"], bool)
    items = [sdk_type.model_validate(item, strict=True) for item in body["data"]]
    # On an empty page OpenAI sends null first_id and last_id; otherwise the ids of the first and last items.
    expected = (items[0].id, items[-1].id) if items else (None, None)  # type: ignore[attr-defined]
    assert (body["first_id"], body["last_id"]) == expected
    return items


def test_files(api: TestClient, tenant: Tenant) -> None:
    assert page_of(FileObject, api.get("/v1/files", headers=tenant.headers)) == []
    file = strictly(FileObject, upload(api, tenant))
    strictly(FileObject, api.get(f"/v1/files/{file.id}", headers=tenant.headers))
    assert [f.id for f in page_of(FileObject, api.get("/v1/files", headers=tenant.headers))] == [file.id]
    deleted = strictly(FileDeleted, api.delete(f"/v1/files/{file.id}", headers=tenant.headers))
    assert deleted.deleted is True and deleted.object == "file"


def test_batches(api: TestClient, tenant: Tenant) -> None:
    assert page_of(Batch, api.get("/v1/batches", headers=tenant.headers)) == []
    file_id = upload(api, tenant).json()["id"]
    batch = strictly(Batch, api.post("/v1/batches", headers=tenant.headers, json=request_body(tenant, file_id)))
    assert batch.usage is not None and batch.usage.input_tokens_details.cached_tokens == 0
    strictly(Batch, api.get(f"/v1/batches/{batch.id}", headers=tenant.headers))
    assert [b.id for b in page_of(Batch, api.get("/v1/batches", headers=tenant.headers))] == [batch.id]
    strictly(Batch, api.post(f"/v1/batches/{batch.id}/cancel", headers=tenant.headers))


@pytest.mark.parametrize("with_md5", [False, True])
def test_uploads(api: TestClient, tenant: Tenant, with_md5: bool) -> None:
    created = strictly(
        Upload,
        api.post(
            "/v1/uploads",
            headers=tenant.headers,
            json={"bytes": len(JSONL), "filename": "r.jsonl", "mime_type": "application/jsonl", "purpose": "batch"},
        ),
    )
    part = strictly(
        UploadPart,
        api.post(f"/v1/uploads/{created.id}/parts", headers=tenant.headers, files={"data": ("blob", JSONL)}),
    )
    body: dict[str, Any] = {"part_ids": [part.id]}
    if with_md5:
        import hashlib

        body["md5"] = hashlib.md5(JSONL).hexdigest()  # noqa: S324  # OpenAI's own checksum
    completed = strictly(Upload, api.post(f"/v1/uploads/{created.id}/complete", headers=tenant.headers, json=body))
    assert completed.status == "completed" and completed.file is not None


def test_models(api: TestClient, tenant: Tenant) -> None:
    [listed] = page_of(Model, api.get("/v1/models", headers=tenant.headers))
    assert listed.id == tenant.job.model
    strictly(Model, api.get(f"/v1/models/{listed.id}", headers=tenant.headers))
