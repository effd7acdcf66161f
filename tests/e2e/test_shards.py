"""One logical run across CI shards: two ``harness run`` processes share ``HARNESS_RUN_ID``
with ``HARNESS_SHARD=1`` and ``2`` against one sandbox at the same time. Both pass, their
namespaces differ (``s01main`` / ``s02main``), and once both are done nothing carrying the
run id is left: the whole-run ``harness residue RUN_ID`` (what a final CI job runs) says
clean, and so does a scan of every table that does not use the harness's own finders. The
shards share one machine's state directory, so neither may remove the other's journal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.namespace import Namespace, RunId
from tests.conftest import REPO
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e

SUITE = """
import os
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(4))
def test_users_of_this_shard(api, user, namespace, n):
    Path(os.environ["SHARD_OUT"], str(namespace)).write_text(user.email + "\\n")
    response = api.get(f"/users/{user.uid}", auth=user.auth)
    assert response.status_code == 200 and response.json()["email"] == user.email
"""


def test_two_shards_of_one_run_never_collide(
    sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    run_id = str(RunId.generate())
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (suite / "test_sharded.py").write_text(SUITE)
    out = tmp_path / "namespaces"
    out.mkdir()
    processes = []
    for shard in ("1", "2"):
        environ = {
            **sandbox_environ,
            "HARNESS_CONFIG": str(REPO / "environments.toml"),
            "HARNESS_RUN_ID": run_id,
            "HARNESS_SHARD": shard,
            # both shards on one machine: one state directory, journals kept apart per shard
            "HARNESS_STATE_DIR": str(tmp_path / "state"),
            "SHARD_OUT": str(out),
        }
        report = tmp_path / f"report-{shard}.json"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "harness",
                    "run",
                    "--report",
                    str(report),
                    "test_sharded.py",
                ],
                cwd=suite,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]
    namespaces = [Namespace.parse(p.name) for p in sorted(out.iterdir())]
    assert [str(ns.run) for ns in namespaces] == [run_id, run_id]
    assert [ns.worker for ns in namespaces] == ["s01main", "s02main"]
    for shard in ("1", "2"):
        report = json.loads((tmp_path / f"report-{shard}.json").read_text())
        assert report["run_id"] == run_id
        assert report["tests"]["passed"] == 4
        assert report["resources"]["created"] == 4 and report["resources"]["leaked"] == 0
    # the whole run's final residue check: nothing anywhere mentions the run id
    final = subprocess.run(
        [sys.executable, "-m", "harness", "residue", run_id],
        cwd=tmp_path,
        env=sandbox_environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    assert items_mentioning(aws, run_id) == []
    assert not list((tmp_path / "state" / "runs").glob(f"{run_id}*"))  # both cleaned up


def test_one_shard_finishing_keeps_the_other_shards_journal(tmp_path: Path) -> None:
    from harness.cleanup.journal import run_dir

    shard1 = run_dir(tmp_path, "itest-20261127t100000-abcd", "s01")
    shard2 = run_dir(tmp_path, "itest-20261127t100000-abcd", "s02")
    assert shard1 != shard2 and shard1.parent == shard2.parent
