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


def test_settling_one_shard_removes_only_its_own_journal(tmp_path: Path) -> None:
    """Two CI shards of one run on one machine: each has its own journal folder; settling one
    (its recovery here — the same removal a clean finish does) leaves the other's journal,
    which the run's residue check and recovery still read."""
    from harness.cleanup.journal import Journal, replay_run, run_dir
    from harness.cleanup.liveness import Liveness, run_folders
    from harness.cleanup.recovery import recover, write_owner
    from tests.unit.stubs import DictKind

    run_id = "itest-20261127t100000-abcd"
    kind = DictKind()
    for shard in ("s01", "s02"):
        write_owner(tmp_path, run_id, "sandbox", "http://u", shard)
        marker = f"{run_id}-{shard}gw0-x"
        kind.add(shard, marker)
        journal = Journal(run_dir(tmp_path, run_id, shard) / "gw0.jsonl")
        journal.append("intent", 1, kind="thing", ids={"key": shard, "marker": marker})
        journal.close()
    one, two = run_folders(tmp_path)
    assert (one.run_id, two.run_id) == (run_id, run_id)
    assert (one.name, two.name) == (f"{run_id}@s01", f"{run_id}@s02")
    assert [r.ids["key"] for r in replay_run(tmp_path, run_id)] == ["s01", "s02"]
    claim = Liveness(None, tmp_path).claim_dead(one)
    assert claim is not None
    assert recover(claim, {"thing": kind}).ok
    claim.release()
    assert not one.path.exists() and two.path.exists()
    assert list(kind.store) == ["s02"]
    assert [r.ids["key"] for r in replay_run(tmp_path, run_id)] == ["s02"]
