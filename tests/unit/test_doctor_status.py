"""``harness doctor``'s exit status follows the exit table (harness/run/outcome.py) as
``harness run`` would end for the same target: real HTTP on loopback for the service, and an
AWS endpoint on a loopback port nothing listens on."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import doctor
from harness.run import outcome
from tests.unit.loopback import Loopback, loopback


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Loopback]:
    for name in list(os.environ):
        if name.startswith(("HARNESS_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with loopback() as server:
        server.route("/health", 200, {"environment": "staging"})
        yield server


def test_a_down_aws_endpoint_is_unreachable_7_as_for_harness_run(
    service: Loopback, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`harness run` says 7 for an AWS endpoint that does not answer; doctor said 1."""
    config = tmp_path / "environments.toml"
    config.write_text(
        f'[staging]\nbase_url = "{service.url}"\naws_region = "us-east-1"\n'
        f'aws_endpoint_url = "http://127.0.0.1:{_closed_port()}"\nprotected = false\n'
    )
    status = doctor.run("staging", str(config), start_sandbox=False)
    out = capsys.readouterr().out
    assert status == outcome.UNREACHABLE, out
    assert "FAIL  credentials" in out and "cannot reach the AWS endpoint" in out, out
    assert "OK    reachability" in out, out  # the service itself answered


def test_only_a_failed_row_marked_unreachable_makes_7() -> None:
    down = doctor.Check("credentials", doctor.FAIL, "cannot reach", unreachable=True)
    other = doctor.Check("table users_table", doctor.FAIL, "ResourceNotFoundException")
    assert doctor.status([down]) == outcome.UNREACHABLE
    assert doctor.status([other, down]) == outcome.UNREACHABLE
    assert doctor.status([other]) == outcome.FAILED
    # a row that is not a FAIL never decides the status, whatever it carries
    assert doctor.status([doctor.Check("x", doctor.WARN, unreachable=True)]) == outcome.PASSED
    assert doctor.status([doctor.Check("configuration", doctor.FAIL), down]) == outcome.CONFIG
