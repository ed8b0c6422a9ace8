"""Joining objects of the bucket, in order, into one: S3 copies the large pieces, the function only the small.

S3 refuses a multipart part under 5 MiB unless it is the last, so small pieces are gathered into a
buffer until they make a valid part; a piece large enough is copied by S3 itself (UploadPartCopy), and
its bytes never pass through the function. Memory holds at most PIECE_BYTES.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchline.data.objects import Objects, Writer

S3_MIN_PART_BYTES = 5 * 1024 * 1024
# What the function buffers of small pieces before sending it on as one multipart part.
PIECE_BYTES = Writer.PART_BYTES
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One object to join, as it was listed: a different ETag by the time it is read is `Changed`
    (None: an object this function wrote itself, read as it is)."""

    key: str
    size: int
    etag: str | None


def _take(objects: Objects, writer: Writer, source: Source, start: int, length: int) -> None:
    body = objects.read_range(source.key, start, start + length, if_match=source.etag)
    try:
        for chunk in body.iter_chunks(READ_CHUNK):
            writer.write(chunk)
    finally:
        body.close()


def assemble(objects: Objects, sources: list[Source], key: str, *, content_type: str) -> None:
    """Write the sources, in order, as one object at `key`; objects.Changed if one was written meanwhile."""
    sources = [s for s in sources if s.size]
    if len(sources) == 1:
        # One object is one server-side copy (S3 copies up to 5 GB in one request).
        objects.copy(sources[0].key, key, if_match=sources[0].etag, content_type=content_type)
        return
    writer = objects.writer(key, content_type=content_type)
    try:
        for source in sources:
            pos = 0
            while pos < source.size:
                left = source.size - pos
                held = writer.held
                if held >= S3_MIN_PART_BYTES and left >= S3_MIN_PART_BYTES:
                    # The buffer is already a valid part and S3 can copy the rest: stop buffering.
                    writer.flush()
                elif not held and left >= S3_MIN_PART_BYTES:
                    writer.copy_part(source.key, pos, source.size, if_match=source.etag)
                    pos = source.size
                else:
                    top_up = S3_MIN_PART_BYTES - held
                    # Read only what makes the buffer a valid part when S3 can then copy the remainder.
                    if 0 < held < S3_MIN_PART_BYTES and left - top_up >= S3_MIN_PART_BYTES:
                        take = top_up
                    else:
                        take = min(left, PIECE_BYTES - held)
                    # The writer sends the buffer on as a part once it holds PIECE_BYTES.
                    _take(objects, writer, source, pos, take)
                    pos += take
        writer.close()
    except BaseException:
        writer.abort()
        raise
