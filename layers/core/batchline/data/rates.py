"""Request counts per API key and second: the rate limiter's storage, one small item per key and window.

Counted in the table so that every api container sees the same count: one conditional UpdateItem per
request (ADD n, only while n < limit), never a read. The item expires by TTL; the sweeper's stream
filter drops its removal before any invocation. The policy (windows, headers, 429) is `batchline.limits`.
"""

from __future__ import annotations

from decimal import Decimal

from batchline.data.items import TTL_ATTR
from batchline.data.table import Table

# How long a window's item outlives its second: DynamoDB's TTL deletes within days, never before.
WINDOW_TTL_SECONDS = 120


class Rates:
    """A key's request count in each one-second window."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def count(self, key_id: str, window: int, limit: int) -> int | None:
        """Count one request in the key's `window` (a whole second): how many it holds now, or None, counting
        nothing, when it held `limit` already."""
        counted = self._table.updated_if(
            {"pk": f"rate#{key_id}#{window}", "sk": "rate"},
            "ADD n :one SET #ttl = if_not_exists(#ttl, :ttl)",
            "attribute_not_exists(n) OR n < :limit",
            {"#ttl": TTL_ATTR},
            {":one": 1, ":limit": limit, ":ttl": window + WINDOW_TTL_SECONDS},
        )
        return None if counted is None else int(Decimal(counted["n"]))
