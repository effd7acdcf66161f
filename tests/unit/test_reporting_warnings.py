"""A warning of the reporting plugin (an alert not delivered, a summary not written) is said
once on the terminal — with the summary's notes when it comes before them, at once when the
summary is already out or will never come (a run that did not start). Pure logic: the
terminal and pytest's config are small stand-ins."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.pytest_plugin.plugin import STATE
from harness.reporting.plugin import Reporting


class Terminal:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: Any) -> None:
        self.lines.append(line)


def _reporting(terminal: Terminal) -> Reporting:
    state = SimpleNamespace(report=SimpleNamespace(latency_samples={}))
    config = SimpleNamespace(
        stash={STATE: state},
        pluginmanager=SimpleNamespace(get_plugin=lambda name: terminal),
        getoption=lambda name: None,
    )
    return Reporting(config, [], "failure")  # type: ignore[arg-type]


def _said(terminal: Terminal, text: str) -> int:
    return sum(text in line for line in terminal.lines)


def test_a_warning_before_the_summary_is_said_once_with_its_notes() -> None:
    terminal = Terminal()
    reporting = _reporting(terminal)
    reporting.notes.append("summary: out/summary.md")
    reporting._warn("alert (webhook to 127.0.0.1:9) not delivered: ConnectionError")
    assert terminal.lines == []  # not yet: the summary says it
    reporting.pytest_terminal_summary(terminal)
    assert _said(terminal, "not delivered: ConnectionError") == 1, terminal.lines
    assert terminal.lines[-2:] == [
        "summary: out/summary.md",
        "WARNING: alert (webhook to 127.0.0.1:9) not delivered: ConnectionError",
    ]


def test_a_warning_with_no_summary_to_come_is_said_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the summary; and when sessionstart stopped (unreachable target), no summary
    will follow."""
    from harness.reporting import alerts

    terminal = Terminal()
    reporting = _reporting(terminal)
    reporting.pytest_terminal_summary(terminal)
    reporting._warn("write summaries: [Errno 2] No such file or directory")
    assert terminal.lines == [
        "harness: WARNING: write summaries: [Errno 2] No such file or directory"
    ]
    assert reporting.notes == []

    terminal = Terminal()
    reporting = _reporting(terminal)
    reporting.targets = [alerts.parse_target("webhook=http://127.0.0.1:9/hook")]
    monkeypatch.setattr(alerts, "send", lambda *args: ([], ["alert (webhook) not delivered"]))
    hook = reporting.pytest_sessionstart(None)  # type: ignore[arg-type]
    next(hook)
    with pytest.raises(pytest.exit.Exception):
        hook.throw(pytest.exit.Exception("cannot reach", returncode=7))
    assert terminal.lines == ["harness: WARNING: alert (webhook) not delivered"]
