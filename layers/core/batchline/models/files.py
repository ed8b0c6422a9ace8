"""Files: OpenAI's File object and the record that says whose it is and where its bytes are."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batchline.models.common import Model, example

# OpenAI's batch input limit; the Uploads API and the S3 inbox take files up to this size.
MAX_FILE_BYTES = 200 * 1024 * 1024
# A file's name, on every way in that takes one from the client (POST /v1/files, the Uploads API): far
# more than any name a file system gives, and well within what the record (DynamoDB, 400 KB) and the
# download link's Content-Disposition carry.
MAX_FILENAME_CHARS = 512

# What a client may upload; the others (`batch_output`, ...) only the service produces.
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
FilePurpose = Literal[
    "assistants", "assistants_output", "batch", "batch_output", "fine-tune", "fine-tune-results",
    "vision", "user_data", "evals",
]  # fmt: skip


class FileObject(Model):
    """OpenAI's File object."""

    model_config = example(
        {
            "id": "file-abc123",
            "object": "file",
            "bytes": 1024,
            "created_at": 1764547200,
            "expires_at": 1767139200,
            "filename": "requests.jsonl",
            "purpose": "batch",
            "status": "processed",
            "status_details": None,
        }
    )

    id: str = Field(description="`file-…`")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None


class FileRecord(FileObject):
    """A File as kept in DynamoDB: the object, its owner and where its bytes are."""

    tenant_id: str
    s3_key: str
