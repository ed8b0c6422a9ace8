"""Job records: what runs a tenant's batches; retired, not deleted, so a running batch keeps its job."""

from __future__ import annotations

from batchline.data import conditions
from batchline.data.table import Table
from batchline.errors import NotFound
from batchline.models import JobRecord


class Jobs:
    """Job records in the table, listed under their tenant."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def put(self, job: JobRecord) -> None:
        self._table.put_new("job", job, owner=job.tenant_id)

    @staticmethod
    def key(job_id: str) -> dict[str, str]:
        return {"pk": job_id, "sk": "job"}

    def get_unscoped(self, job_id: str) -> JobRecord:
        """A job by id alone, retired or not: a running batch keeps the job it started with."""
        item = self._table.get("job", job_id)
        if item is None:
            raise NotFound(f"No such Job object: {job_id}", param="job_id")
        return JobRecord.model_validate(item)

    def get_live(self, job_id: str) -> JobRecord | None:
        """A job by id alone if it is not retired, whoever owns it; None otherwise (the inbox names a job so)."""
        item = self._table.get("job", job_id)
        if item is None or item.get("deleted_at") is not None:
            return None
        return JobRecord.model_validate(item)

    def get(self, tenant_id: str, job_id: str, *, param: str = "id") -> JobRecord:
        """A tenant's job that is not retired."""
        item = self._table.get_owned("job", tenant_id, job_id, param=param)
        if item.get("deleted_at") is not None:
            raise NotFound(f"No such Job object: {job_id}", param=param)
        return JobRecord.model_validate(item)

    def page(self, tenant_id: str, *, after: str | None, limit: int) -> tuple[list[JobRecord], bool]:
        """One page of a tenant's jobs that are not retired, newest first, and whether more follow."""
        items, more = self._table.list_owned(
            "job",
            tenant_id,
            after=after,
            limit=limit,
            newest_first=True,
            filter_=conditions.Attr("deleted_at").not_exists(),
        )
        return [JobRecord.model_validate(i) for i in items], more

    def retire(self, job_id: str, now: int) -> None:
        """New batches cannot use a retired job; batches already running keep theirs."""
        self._table.update(
            "job",
            job_id,
            set_={"deleted_at": now},
            condition=conditions.Attr("deleted_at").not_exists(),
            conflict=NotFound(f"No such Job object: {job_id}", param="id"),
        )
