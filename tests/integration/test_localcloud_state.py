"""`make local` keeps the demo's keys and job across restarts: a user's scripts keep working."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from localcloud import LocalCloud


def start(state: Path) -> dict[str, str]:
    """Start a cloud on `state`, check what it seeded works through the API, and stop it."""
    with LocalCloud(state_file=state, ttl_interval=None) as cloud:
        seeded = dict(cloud.seeded)
        tenant = {"Authorization": f"Bearer {cloud.api_key}"}
        admin = {"Authorization": f"Bearer {cloud.admin_key}"}
        # The first request imports the api function cold: on a busy machine, longer than httpx's 5 s default.
        job = httpx.get(f"{cloud.base_url}/jobs/{cloud.job_id}", headers=tenant, timeout=120)
        assert job.status_code == 200, job.text
        assert job.json()["tenant"] == cloud.tenant_id
        assert httpx.get(f"{cloud.base_url}/admin/tenants", headers=admin).status_code == 200
        assert httpx.get(f"{cloud.base_url}/files", headers={"Authorization": "Bearer sk-bl-never"}).status_code == 401
    return seeded


def test_a_restart_on_the_same_state_file_keeps_keys_tenant_and_job(tmp_path: Path) -> None:
    state = tmp_path / "local" / "state.json"
    first = start(state)
    assert json.loads(state.read_text()) == first
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # it holds keys
    second = start(state)
    assert second == first
    # Without the file a start makes new ones (as before), and writes them for the next.
    state.unlink()
    third = start(state)
    assert third["api_key"] != first["api_key"] and third["job_id"] != first["job_id"]
    assert json.loads(state.read_text()) == third
