"""Uploads: OpenAI's Upload and Upload Part objects, their requests, and the record kept until completion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batchline.models.common import ExpiresAfter, Model, Strict, example
from batchline.models.files import MAX_FILE_BYTES, MAX_FILENAME_CHARS, FileObject, UploadPurpose

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


class UploadCreate(Strict):
    """Body of POST /v1/uploads."""

    model_config = example(
        {"bytes": 104857600, "filename": "requests.jsonl", "mime_type": "application/jsonl", "purpose": "batch"}
    )

    bytes: int = Field(gt=0, description=f"Size of the whole file; at most {MAX_FILE_BYTES} bytes.")
    filename: str = Field(min_length=1, max_length=MAX_FILENAME_CHARS)
    mime_type: str = Field(min_length=1, max_length=255, description="E.g. `application/jsonl`.")
    purpose: UploadPurpose = Field(description="The File's purpose; `batch` is the one Batchline processes.")
    expires_after: ExpiresAfter | None = Field(default=None, description="Expiry policy of the File.")


class UploadComplete(Strict):
    """Body of POST /v1/uploads/{id}/complete."""

    model_config = example({"part_ids": ["part_abc123", "part_def456"], "md5": None})

    part_ids: list[str] = Field(
        max_length=10_000,
        description="The parts in file order; empty to register what was PUT to the presigned URL.",
    )
    md5: str | None = Field(default=None, description="Hex MD5 of the whole file, checked when given.")


class UploadObject(Model):
    """OpenAI's Upload object."""

    model_config = example(
        {
            "id": "upload_abc123",
            "object": "upload",
            "bytes": 104857600,
            "created_at": 1764547200,
            "expires_at": 1764550800,
            "filename": "requests.jsonl",
            "purpose": "batch",
            "status": "pending",
            "file": None,
        }
    )

    id: str = Field(description="`upload_…`")
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: UploadPurpose
    status: UploadStatus
    file: FileObject | None = Field(default=None, description="The File, once the upload is completed.")


class UploadChain(Model):
    """The parts added so far, joined in the order they came, as one staged object (`key`, `bytes` long).

    A client that completes with the parts in that order (as the SDK's upload_file_chunked does) gets its
    File by one server-side copy, however large; any other order is joined part by part at completion.
    """

    parts: list[str]
    key: str
    bytes: int


class UploadRecord(UploadObject):
    """An Upload as kept in DynamoDB; its status stays `pending` after expiry, shown as `expired`."""

    tenant_id: str
    mime_type: str
    expires_after: ExpiresAfter | None = None
    chain: UploadChain | None = None

    def view(self, now: int) -> UploadObject:
        """The object as the client sees it at `now`."""
        status: UploadStatus = "expired" if self.expired(now) else self.status
        return UploadObject.model_validate(self.model_dump(include=set(UploadObject.model_fields)) | {"status": status})

    def expired(self, now: int) -> bool:
        return self.status == "pending" and now >= self.expires_at


class UploadPartObject(Model):
    """OpenAI's Upload Part object."""

    model_config = example(
        {"id": "part_abc123", "object": "upload.part", "created_at": 1764547200, "upload_id": "upload_abc123"}
    )

    id: str = Field(description="`part_…`")
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


class PresignedUpload(Model):
    """Where and how to PUT the whole file directly to S3."""

    model_config = example(
        {
            "url": "https://batchline-bucket.s3.us-east-1.amazonaws.com/uploads/...",
            "method": "PUT",
            "headers": {"Content-Length": "104857600"},
            "expires_at": 1764548100,
        }
    )

    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="Headers the PUT must carry (they are signed).")
    expires_at: int = Field(description="The URL works until then.")
