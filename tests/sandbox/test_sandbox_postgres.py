"""The sandbox starts a real PostgreSQL server when a profile needs one (its SQL kinds): the
harness passes ``--postgres-url-variable`` for each SQL kind, the sandbox exports a working
database URL under that name, and stopping the sandbox stops the server and removes its
cluster. Skipped with one line where PostgreSQL is not installed (failed under CI=true).

On the old code the sandbox has no such option: the run's profile could not get a database."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from harness.config import Profile
from harness.run.lifecycle import sandbox_arguments
from harness.run.local_sandbox import LocalSandbox
from sandbox.postgres import find_bindir
from tests.postgres import missing

pytestmark = pytest.mark.e2e


def test_a_profile_with_sql_kinds_asks_for_postgres() -> None:
    kinds = {
        "order": {"type": "sql", "url_variable": "ORDERS_DB_URL", "table": "orders"},
        "member": {"type": "cognito", "user_pool_id": "p", "marker": "username"},
        "note": {"table": "notes"},
    }
    assert sandbox_arguments(Profile(name="sandbox", kinds=kinds)) == [
        "--postgres-url-variable",
        "ORDERS_DB_URL",
    ]
    assert sandbox_arguments(Profile(name="sandbox", events_bus="kafka")) == ["--bus", "kafka"]


def test_the_sandbox_exports_a_real_database_and_stops_it(tmp_path: Path) -> None:
    if find_bindir() is None:
        missing()
    sandbox = LocalSandbox.start(
        tmp_path / "sandbox.log", ["--postgres-url-variable", "ORDERS_DB_URL"]
    )
    try:
        url = sandbox.exports["ORDERS_DB_URL"]
        assert url.startswith("postgresql://harness:") and url.endswith("/sandbox")
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == ("sandbox",)
            pid = connection.execute("SELECT pg_backend_pid()").fetchone()
        assert sandbox.exports["HARNESS_BASE_URL"].startswith("http://127.0.0.1:")
    finally:
        sandbox.stop()
    assert pid is not None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert not list(Path("/tmp").glob("env-harness-pg-*/data/postmaster.pid")) or all(
        not p.exists() for p in Path("/tmp").glob("env-harness-pg-*/data/postmaster.pid")
    )
