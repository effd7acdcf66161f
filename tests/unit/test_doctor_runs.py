"""`harness doctor`'s "runs here" row asks the liveness authority, as every deleting command
does: live runs are counted alive (whatever their owner file says), dead ones with something
left make a WARN that names `harness recover`, other targets' folders are not counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.liveness import hold
from harness.cli.doctor import OK, WARN, runs_check
from harness.config import Profile
from tests.unit.stubs import ns


def folder(state: Path, run_id: str, base_url: str, unsettled: bool) -> Path:
    path = run_dir(state, run_id)
    journal = Journal(path / "gw0.jsonl")
    journal.append("intent", 1, kind="user", ids={"email": "x"})
    if not unsettled:
        journal.append("deleted", 1)
    journal.close()
    (path / "owner.json").write_text(json.dumps({"base_url": base_url, "pid": 1}))
    return path


def test_the_runs_row_counts_live_and_dead_runs_of_this_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    profile = Profile(name="staging", base_url="https://t")
    live = folder(tmp_path, str(ns(1, "aaaa").run), "https://t", unsettled=True)
    held = hold(live, "gw0")  # its worker is still cleaning up: alive, never "dead"
    folder(tmp_path, str(ns(1, "bbbb").run), "https://t", unsettled=False)  # settled: no work
    folder(tmp_path, str(ns(1, "cccc").run), "https://elsewhere", unsettled=True)
    try:
        row = runs_check(profile, {})
        assert (row.status, row.detail.split(",")[0]) == (OK, "1 alive")
        assert " 0 dead with something left" in row.detail
    finally:
        held.release()
    row = runs_check(profile, {})
    assert row.status == WARN and row.detail.startswith("0 alive, 1 dead with something left")
    assert row.fix == "harness recover --env staging"
