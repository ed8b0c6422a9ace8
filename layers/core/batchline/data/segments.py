"""Run segments: the lines one worker invocation answered, each its own item beside its batch.

A segment's record is written once, kept `pending`, then committed with the batch's counters in one
transaction: that write is what makes the segment's part files count, so a retried invocation can
neither lose nor double a line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from batchline.data import conditions
from batchline.data.items import to_item
from batchline.data.table import Table
from batchline.errors import ServerError
from batchline.models import SegmentRecord
from batchline.models.batches import USAGE_PATHS

# Segment records only matter until the batch is finalized; keep them a while for inspection.
SEGMENT_TTL_SECONDS = 14 * 24 * 3600

Verdict = Literal["recorded", "duplicate", "closed", "retry"]


def _pk(batch_id: str) -> str:
    return f"{batch_id}#segments"


def _sk(chunk: int, cursor: int) -> str:
    return f"{chunk:06d}#{cursor:06d}"


def following(segments: Iterable[SegmentRecord], cursor: int) -> list[SegmentRecord]:
    """Of one chunk's segments, those that follow each other from `cursor` on, each starting where the one
    before ended (one segment per cursor: its key is the chunk and the cursor)."""
    by_cursor = {segment.cursor: segment for segment in segments}
    chain: list[SegmentRecord] = []
    while (segment := by_cursor.get(cursor)) is not None and segment.next_cursor != cursor:
        chain.append(segment)
        cursor = segment.next_cursor
    return chain


class Segments:
    """A batch's segments, in chunk then cursor order."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @staticmethod
    def key(batch_id: str, chunk: int, cursor: int) -> dict[str, str]:
        return {"pk": _pk(batch_id), "sk": _sk(chunk, cursor)}

    def get(self, batch_id: str, chunk: int, cursor: int) -> SegmentRecord | None:
        item = self._table.get_key(self.key(batch_id, chunk, cursor), consistent=True)
        return SegmentRecord.model_validate(item) if item is not None else None

    def put(self, segment: SegmentRecord) -> SegmentRecord | None:
        """Keep what an invocation answered, `pending` until committed; None, or the segment already there.

        Its own item, so no other writer contends for it: once it is kept, a commit that fails never
        makes the lines go upstream again (the next invocation, or finalize, commits what is kept).
        """
        item = {
            "pk": _pk(segment.batch_id),
            "sk": _sk(segment.chunk, segment.cursor),
            "ttl": int(time.time()) + SEGMENT_TTL_SECONDS,
            **to_item(segment),
            "pending": True,
        }
        if self._table.put_if_absent(item):
            return None
        return self.get(segment.batch_id, segment.chunk, segment.cursor)

    def commit(self, segment: SegmentRecord) -> Verdict:
        """Mark a kept segment committed and add its counts to the batch, together.

        Answers `recorded`; `duplicate` if it was committed before; `closed` if the batch no longer takes
        segments (finalize closed it: it merges what is kept itself); `retry` if DynamoDB cancelled the
        transaction for a conflict or throttling, which a later try may pass.
        """
        batch_id = segment.batch_id
        # Each counter's path in the batch item, as placeholders (#request_counts.#completed), and its value.
        paths = {"completed": "request_counts.completed", "failed": "request_counts.failed", **USAGE_PATHS}
        counters = {
            name: (".".join(f"#{part}" for part in path.split(".")), getattr(segment, name))
            for name, path in paths.items()
        }
        names = {f"#{part}": part for path in paths.values() for part in path.split(".")}
        outcome = (
            self._table.transaction()
            .update(
                "segment",
                {"pk": _pk(batch_id), "sk": _sk(segment.chunk, segment.cursor)},
                "REMOVE pending",
                condition="attribute_exists(pending)",
            )
            .update(
                "batch",
                {"pk": batch_id, "sk": "batch"},
                "ADD " + ", ".join(f"{path} :{name}" for name, (path, _) in counters.items()),
                # A cancelling batch is still open to workers until finalize closes it.
                condition="#status IN (:running, :cancelling)"
                " AND (attribute_not_exists(#closing) OR attribute_type(#closing, :null))",
                names=names | {"#status": "status", "#closing": "closing"},
                values={f":{name}": value for name, (_, value) in counters.items()}
                | {":running": "in_progress", ":cancelling": "cancelling", ":null": "NULL"},
            )
            .write()
        )
        if outcome.written:
            return "recorded"
        if "segment" in outcome.refused:
            return "duplicate"
        if "batch" in outcome.refused:
            return "closed"
        if outcome.contended:
            return "retry"
        raise ServerError(f"Recording a segment of {batch_id} failed: {outcome}")

    def chain(self, first: SegmentRecord) -> list[SegmentRecord]:
        """`first` and the segments that follow it in its chunk, each starting where the one before ended.

        An invocation commits a segment at every checkpoint: one that crashed left a run of them, which the
        next invocation at the same cursor reads in one query to resume where the last one ended.
        """
        query: dict[str, Any] = {
            "KeyConditionExpression": conditions.Key("pk").eq(_pk(first.batch_id))
            & conditions.Key("sk").between(_sk(first.chunk, first.cursor), _sk(first.chunk, 999_999)),
            "ConsistentRead": True,
        }
        queried = map(SegmentRecord.model_validate, self._table.query_all(**query))
        return following([first, *queried], first.cursor)  # as read now, when the query holds it

    def of_batch(self, batch_id: str) -> list[SegmentRecord]:
        """Every kept segment of a batch (committed, or `pending` until it is), in chunk then cursor order."""
        query: dict[str, Any] = {
            "KeyConditionExpression": conditions.Key("pk").eq(_pk(batch_id)),
            "ConsistentRead": True,
        }
        return [SegmentRecord.model_validate(item) for item in self._table.query_all(**query)]
