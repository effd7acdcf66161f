"""What ``harness`` (harness/cli/main.py ``main``) does with an error no command foresaw: one
line and the exit table's status (3 a bug, 7 the target's AWS or HTTP trouble) — and with
``HARNESS_DEBUG=1`` the traceback first, the status unchanged. The command's body is a stand-in
that raises: this is the error mapping alone."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from harness.cli import main as cli
from harness.run import outcome


def _raising(error: Exception) -> object:
    def body(argv: list[str]) -> int:
        raise error

    return body


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_is_status_3_with_or_without_harness_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], debug: bool
) -> None:
    monkeypatch.setattr(cli, "_main", _raising(RuntimeError("boom")))
    if debug:
        monkeypatch.setenv("HARNESS_DEBUG", "1")
    else:
        monkeypatch.delenv("HARNESS_DEBUG", raising=False)
    assert cli.main(["run"]) == outcome.INTERNAL_ERROR
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("harness: internal error: RuntimeError: boom"), err
    assert ("Traceback (most recent call last)" in err) is debug, err
    if debug:  # the traceback names where it was raised, before the one line
        assert err.index("Traceback") < err.index("harness: internal error"), err
        assert "raise error" in err and "RuntimeError: boom\n" in err, err


def test_the_targets_trouble_stays_7_under_harness_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        cli, "_main", _raising(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    )
    monkeypatch.setenv("HARNESS_DEBUG", "1")
    assert cli.main(["sweep"]) == outcome.UNREACHABLE
    err = capsys.readouterr().err
    assert "Traceback" in err and "harness: the target failed: EndpointConnectionError" in err
