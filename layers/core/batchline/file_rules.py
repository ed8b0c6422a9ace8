"""The rules of a batch input file as a whole: one function per error code of the contract, each known once
every line is read (or, for its size, before any is), in the contract's order."""

from __future__ import annotations

from batchline.models import BatchError
from batchline.rules import EMBEDDINGS, LineRules


def file_too_large(max_bytes: int) -> BatchError:
    """file_too_large: the only error of a file over the byte limit."""
    message = f"The batch input file is larger than the maximum of {max_bytes} bytes."
    return BatchError(code="file_too_large", message=message)


def empty_file(total: int) -> BatchError | None:
    """empty_file: no request lines."""
    if total:
        return None
    return BatchError(code="empty_file", message="The batch input file has no requests.")


def too_many_tasks(total: int, max_requests: int) -> BatchError | None:
    """too_many_tasks: more request lines than the limit."""
    if total <= max_requests:
        return None
    return BatchError(code="too_many_tasks", message=f"The batch has {total} requests; the maximum is {max_requests}.")


def too_many_embedding_inputs(endpoint: str, inputs: int, max_inputs: int) -> BatchError | None:
    """too_many_embedding_inputs: an embeddings batch asking for more inputs in all than the limit."""
    if endpoint != EMBEDDINGS or inputs <= max_inputs:
        return None
    return BatchError(
        code="too_many_embedding_inputs",
        message=f"The batch has {inputs} embedding inputs in all; the maximum is {max_inputs}.",
    )


def whole_file_errors(
    rules: LineRules, total: int, *, max_requests: int, max_embedding_inputs: int
) -> list[BatchError]:
    """The problems of the file as a whole, known once every line is read, in the contract's order."""
    found = (
        empty_file(total),
        too_many_tasks(total, max_requests),
        too_many_embedding_inputs(rules.endpoint, rules.embedding_inputs, max_embedding_inputs),
    )
    return [error for error in found if error is not None]
