"""The sweeper on a table of thousands of items, against the real emulator: the read budget
holds (measured over the whole sweep), a sweep interrupted half-way continues from its
checkpoint instead of starting over, segmented scans find exactly what one scan finds, and
the CLI's options reject bad input with one line."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.cleanup import sweeper
from harness.clients.aws import Aws
from harness.kinds import Kind, load_kinds
from harness.kinds.dynamo import Checkpoint, ScanControl
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

FOREIGN = 3000
LEFTOVERS = 150


@pytest.fixture(scope="module")
def kinds(sandbox_environ: dict[str, str]) -> dict[str, Kind]:
    profile = load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ)
    return load_kinds(profile, Aws(profile))


@pytest.fixture(scope="module")
def dead_run(aws: Aws) -> Iterator[str]:
    """A users table of thousands of foreign users and the leftovers of a run dead 5 h.
    Both are removed afterwards: the session's sandbox is shared with other tests, whose
    residue checks look namespace-wide only while the tables are small."""
    namespace = Namespace(RunId.generate(datetime.now(UTC) - timedelta(hours=5)), "gw0")
    users = aws.table(aws.profile.setting("users_table"))
    uids = [secrets.randbits(52) for _ in range(FOREIGN + LEFTOVERS)]
    with users.batch_writer() as batch:
        for i in range(FOREIGN):
            email = f"colleague{i}-{secrets.token_hex(3)}@corp.example.com"
            batch.put_item(Item={"Uid": uids[i], "Email": email, "Name": "C"})
        for i in range(LEFTOVERS):
            email = namespace.email(f"left{i}")
            batch.put_item(Item={"Uid": uids[FOREIGN + i], "Email": email, "Name": "L"})
    yield str(namespace.run)
    with users.batch_writer() as batch:
        for uid in uids:
            batch.delete_item(Key={"Uid": uid})


def planned(kinds: dict[str, Kind], run: str, scan: ScanControl | None = None) -> set[Any]:
    plan = sweeper.plan(kinds, older_than=3600, alive={}, scan=scan)
    leftovers = plan.to_delete.get(run)
    return {(f.kind, f.ids["uid"]) for f in leftovers.items} if leftovers else set()


def test_segments_find_what_one_scan_finds(kinds: dict[str, Kind], dead_run: str) -> None:
    one = planned(kinds, dead_run)
    four = ScanControl(segments=4, page_size=200)
    assert len(one) == LEFTOVERS
    assert planned(kinds, dead_run, four) == one
    assert four.calls > 4  # every segment paged


def test_the_read_budget_holds_over_a_sweep(kinds: dict[str, Kind], dead_run: str) -> None:
    # Pages of 500 items: several requests, each paid for as it is read.
    control = sweeper.scan_control(max_rate=(1000.0, "items"), page_size=500)
    started = time.monotonic()
    found = planned(kinds, dead_run, control)
    seconds = time.monotonic() - started
    rate = control.scanned / seconds
    assert len(found) == LEFTOVERS
    assert control.scanned > FOREIGN
    assert 1000 * 0.9 <= rate <= 1000 * 1.1, (control.scanned, seconds)


class Interrupted(Exception):
    pass


class StopsAfter(Checkpoint):
    """A checkpoint whose sweep is stopped (as by Ctrl-C) once ``pages`` pages are saved."""

    def __init__(self, directory: Path, profile: str, pages: int) -> None:
        super().__init__(directory, profile)
        self.pages = pages

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self.pages -= 1
        if self.pages == 0:
            raise Interrupted


def test_an_interrupted_sweep_continues_from_its_checkpoint(
    kinds: dict[str, Kind], dead_run: str, tmp_path: Path
) -> None:
    users = {"user": kinds["user"]}
    full = ScanControl(page_size=250)
    expected = planned(users, dead_run, full)

    first = ScanControl(page_size=250, checkpoint=StopsAfter(tmp_path, "sandbox", pages=6))
    with pytest.raises(Interrupted):
        planned(users, dead_run, first)
    assert first.calls == 6

    resumed = sweeper.scan_control(state_dir=tmp_path, profile="sandbox", page_size=250)
    assert planned(users, dead_run, resumed) == expected
    assert first.scanned + resumed.scanned == full.scanned  # nothing read twice
    assert resumed.calls == full.calls - 6

    restarted = sweeper.scan_control(
        state_dir=tmp_path, profile="sandbox", page_size=250, restart=True
    )
    assert planned(users, dead_run, restarted) == expected
    assert restarted.scanned == full.scanned


def harness(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--segments", "0"], "--segments must be a whole number from 1 to 64, not '0'"),
        (["--segments", "x"], "--segments must be a whole number from 1 to 64, not 'x'"),
        (["--max-rate", "fast"], "--max-rate: a read budget is a positive number"),
    ],
)
def test_bad_sweep_options_are_one_line(
    args: list[str], message: str, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    env = {**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path)}
    done = harness("sweep", *args, env=env)
    assert done.returncode == 8  # bad usage (harness/run/outcome.py)
    assert done.stderr.startswith(f"harness: {message}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_bad_profile_budget_names_the_field(
    sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    env = {**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path)}
    done = harness("sweep", env={**env, "HARNESS_SWEEP_MAX_RATE": "lots"})
    assert done.returncode == 8  # bad usage (harness/run/outcome.py)
    assert "sweep_max_rate" in done.stderr and "lots" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_budgeted_segmented_sweep_from_the_cli(
    dead_run: str, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    env = {**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path)}
    args = ["sweep", "--older-than", "1h", "--segments", "3", "--max-rate", "20000", "--yes"]
    done = harness(*args, "--max", "100000", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 segments, budget 20000 items/s" in done.stdout, done.stdout
    assert dead_run in done.stdout
    assert not Checkpoint(tmp_path, "sandbox").exists()  # a finished sweep leaves none
