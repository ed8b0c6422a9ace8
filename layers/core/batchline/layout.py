"""The bucket's layout: every prefix, the keys under it, and which function may do what there.

A prefix is named here once. `ACCESS` says which function (by its template logical id) reads, writes, deletes
or lists under which prefix; tests/integration/test_layout_policies.py holds it against the policies in
template.yaml both ways, so a new key under a prefix a function may not touch, or a permission nothing uses,
fails a test instead of a deployment.
"""

from __future__ import annotations

from typing import Literal

FILES = "files/"  # every File's bytes: uploads, inbox copies, batch outputs and errors
UPLOADS = "uploads/"  # an Upload's staged parts and presigned object, until it completes
WORK = "work/"  # a batch's manifest and the part files its workers write, until finalize merges them
INBOX = "inbox/"  # objects a client puts to start a batch: inbox/<job_id>/<name>.jsonl
OUTBOX = "outbox/"  # an inbox batch's results, next to where it came from
PREFIXES = (FILES, UPLOADS, WORK, INBOX, OUTBOX)

INBOX_SUFFIX = ".jsonl"


def file_key(tenant_id: str, file_id: str) -> str:
    return f"{FILES}{tenant_id}/{file_id}"


def upload_prefix(tenant_id: str, upload_id: str) -> str:
    return f"{UPLOADS}{tenant_id}/{upload_id}/"


def upload_part_key(tenant_id: str, upload_id: str, part_id: str) -> str:
    return f"{upload_prefix(tenant_id, upload_id)}parts/{part_id}"


def upload_chain_key(tenant_id: str, upload_id: str, parts: int) -> str:
    """The staged join of an upload's first `parts` parts, in the order they came."""
    return f"{upload_prefix(tenant_id, upload_id)}chain/{parts}"


def upload_object_key(tenant_id: str, upload_id: str) -> str:
    """Where a presigned PUT puts the whole file."""
    return f"{upload_prefix(tenant_id, upload_id)}object"


def manifest_key(batch_id: str) -> str:
    return f"{WORK}{batch_id}/manifest.json"


def part_keys(batch_id: str, chunk: int, cursor: int, attempt: str) -> tuple[str, str]:
    """Where one attempt at a segment writes its output and error lines."""
    base = f"{WORK}{batch_id}/parts/{chunk:06d}/{cursor:06d}-{attempt}"
    return f"{base}.out.jsonl", f"{base}.err.jsonl"


def outbox_key(inbox_key: str, suffix: str) -> str:
    """inbox/<job>/<name>.jsonl -> outbox/<job>/<name>.<suffix>.jsonl."""
    job_and_name = inbox_key.removeprefix(INBOX).removesuffix(INBOX_SUFFIX)
    return f"{OUTBOX}{job_and_name}.{suffix}{INBOX_SUFFIX}"


# What a function does under a prefix. `read_version` reads a given version (the inbox's S3 events name one);
# `abort_multipart` gives up a multipart write; `list` is ListBucket, which also makes a missing key answer
# NoSuchKey rather than AccessDenied.
Access = Literal["read", "read_version", "write", "abort_multipart", "delete", "list"]

ACCESS: tuple[tuple[str, Access, str], ...] = (
    # Files in and out, and the Uploads API's staging.
    ("ApiFunction", "read", FILES),
    ("ApiFunction", "write", FILES),
    ("ApiFunction", "abort_multipart", FILES),
    ("ApiFunction", "delete", FILES),
    ("ApiFunction", "read", UPLOADS),
    ("ApiFunction", "write", UPLOADS),
    ("ApiFunction", "abort_multipart", UPLOADS),
    ("ApiFunction", "delete", UPLOADS),
    ("ApiFunction", "list", UPLOADS),
    # Partial results: a running batch's manifest and the part files its workers committed.
    ("ApiFunction", "read", WORK),
    # Validates the input file, writes the manifest.
    ("PlanFunction", "read", FILES),
    ("PlanFunction", "write", WORK),
    # Reads its chunk of the input file, writes its segment's part files.
    ("WorkerFunction", "read", FILES),
    ("WorkerFunction", "write", WORK),
    # Reads the manifest, the parts and the input; writes the output and error files and the outbox copies.
    ("FinalizeFunction", "read", WORK),
    ("FinalizeFunction", "read", FILES),
    ("FinalizeFunction", "list", WORK),
    ("FinalizeFunction", "list", FILES),
    ("FinalizeFunction", "write", FILES),
    ("FinalizeFunction", "abort_multipart", FILES),
    ("FinalizeFunction", "write", OUTBOX),
    # Granted with the write; the outbox copy is one CopyObject, so nothing gives one up there today.
    ("FinalizeFunction", "abort_multipart", OUTBOX),
    # Copies an inbox object (the version its event names) to files/.
    ("IngestFunction", "read", INBOX),
    ("IngestFunction", "read_version", INBOX),
    ("IngestFunction", "write", FILES),
    # Removes an expired file's bytes.
    ("SweeperFunction", "delete", FILES),
    # The Distributed Map's ItemReader reads the manifest.
    ("BatchStateMachine", "read", WORK),
)
