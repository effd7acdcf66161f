"""Fault points (harness/faultpoints.py): inert unless asked; when asked, the process says
where it is and waits there until released, so a driver can inject a fault at that exact
phase."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from harness import faultpoints


@pytest.fixture(autouse=True)
def fresh_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faultpoints, "_ARRIVALS", faultpoints.Counter())


def test_without_the_variable_a_fault_point_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HARNESS_FAULT_AT", raising=False)
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "log"))
    faultpoints.reach("create")
    assert not (tmp_path / "log").exists()


def test_the_named_arrival_is_logged_and_held_until_released(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    monkeypatch.setenv("HARNESS_FAULT_AT", "cleanup, create@2")
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(log))
    monkeypatch.setenv("HARNESS_FAULT_HOLD", "5")
    faultpoints.reach("create")  # the first create is not the one asked for
    faultpoints.reach("residue")  # nor is another phase
    assert not log.exists()
    threading.Timer(0.3, lambda: Path(f"{log}.release").touch()).start()
    started = time.monotonic()
    faultpoints.reach("create")
    held = time.monotonic() - started
    assert log.read_text().split() == [str(os.getpid()), "create", "2"]
    assert 0.25 <= held < 4  # waited for the release, not for the whole hold


def test_a_hold_ends_by_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_FAULT_AT", "report")
    monkeypatch.setenv("HARNESS_FAULT_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("HARNESS_FAULT_HOLD", "0.2")
    started = time.monotonic()
    faultpoints.reach("report")
    assert 0.15 <= time.monotonic() - started < 2
    faultpoints.reach("report")  # the second arrival is not held
    assert (tmp_path / "log").read_text().count("report") == 1


def test_every_marked_phase_is_listed() -> None:
    import subprocess

    marked = subprocess.run(
        ["grep", "-rhoE", r"faultpoints\.reach\(\"[a-z-]+\"\)", "harness"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()
    names = {m.split('"')[1] for m in marked}
    assert names and names <= set(faultpoints.PHASES)
