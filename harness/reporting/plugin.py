"""The reporting side of a run: redacted test reports, latency, summaries, HTML and alerts.

A pytest plugin loaded with ``harness.pytest_plugin.plugin``. It owns the ``--summary``,
``--alert`` and ``--alert-on`` options (``--html`` is pytest-html's, made self-contained
here), masking every secret the worker knows in each test report *before* it leaves the
worker, long messages and sections cut to a cap first (so JUnit, HTML, the terminal and
xdist's controller only ever see redacted, bounded text), collecting one line per failure,
and — once the run's exit status and residue are known (right after the core plugin's end
sequence, before pytest-html writes its file) — writing the Markdown summary (and
``$GITHUB_STEP_SUMMARY``), the harness section of the HTML report (with the history's
verdicts and trends, :mod:`harness.reporting.trends`) and sending alerts.
Latency samples travel with each worker's figures
(:func:`harness.run.lifecycle.finish_worker`). Nothing here may change the run's exit
status: a delivery problem is a warning line.

PYTEST_DONT_REWRITE: engine code, no test assertions (:mod:`harness.pytest_plugin.rewriting`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from harness import faultpoints
from harness.clients.aws import Aws
from harness.pytest_plugin.fixtures import EVENT_ROWS
from harness.pytest_plugin.plugin import STATE, RunState
from harness.reporting import alerts, html_report, latency, summary, trends
from harness.reporting.events import timeline_html
from harness.run import outcome
from harness.safety.redact import SHOWN, SHOWN_TEXT, Redactor, cut_marker, shorten

_MAX_MESSAGE = 240
#: Sections that the HTML report shows as tables instead (pytest names a fixture's section
#: ``Captured KEY WHEN``).
HTML_TWINS = ("Captured harness events ", "harness: service logs ")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness")
    group.addoption(
        "--summary",
        dest="harness_summary",
        metavar="PATH",
        help="write a Markdown run summary to PATH (also appended to $GITHUB_STEP_SUMMARY "
        "when that is set)",
    )
    group.addoption(
        "--alert",
        dest="harness_alerts",
        action="append",
        default=[],
        metavar="TARGET",
        help="webhook=URL (Slack-compatible message on failure or leak) or cloudwatch "
        "(run metrics); repeatable",
    )
    group.addoption(
        "--alert-on",
        dest="harness_alert_on",
        default="failure",
        metavar="WHEN",
        help="failure (default: a failed test, cleanup failure or leak), always, or change "
        "(only what is new: a new failure, a fixed test, a new leak, a p95 beyond its trend)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        targets = [alerts.parse_target(t) for t in config.getoption("harness_alerts") or []]
        policy = alerts.parse_policy(config.getoption("harness_alert_on"))
    except alerts.AlertConfigError as error:
        raise pytest.UsageError(str(error)) from None
    if config.getoption("htmlpath", None):
        config.option.self_contained_html = True  # one file, nothing loaded from the network
    config.pluginmanager.register(Reporting(config, targets, policy), "harness-reporting")


def _scrub(value: Any, redactor: Redactor, seen: set[int]) -> Any:
    """Redact every string inside pytest's failure representation (dataclasses, lists and
    tuples of them), keeping its structure — so the terminal, JUnit and HTML still get the
    crash message and the traceback, only masked. Each string is cut to ``SHOWN`` characters
    and each list's strings together to ``SHOWN_TEXT`` (a marker says how much), before
    masking: a 10 MB body in an assertion costs what is shown of it."""
    if isinstance(value, str):
        return redactor.shown(value, SHOWN)
    if id(value) in seen:
        return value
    if isinstance(value, list):
        seen.add(id(value))
        value[:] = _scrub_lines(value, redactor, seen)
    elif isinstance(value, tuple):
        return tuple(_scrub(v, redactor, seen) for v in value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.add(id(value))
        for f in dataclasses.fields(value):
            object.__setattr__(value, f.name, _scrub(getattr(value, f.name), redactor, seen))
    return value


def _scrub_lines(values: list[Any], redactor: Redactor, seen: set[int]) -> list[Any]:
    """A list's items scrubbed; its strings (a traceback entry's lines) kept while they fit in
    ``SHOWN_TEXT`` characters, the rest said in one marker line."""
    kept: list[Any] = []
    room = SHOWN_TEXT
    for index, value in enumerate(values):
        if isinstance(value, str):
            if room <= 0:
                left = sum(len(v) for v in values[index:] if isinstance(v, str))
                kept.append(cut_marker(left))
                kept += [
                    _scrub(v, redactor, seen) for v in values[index:] if not isinstance(v, str)
                ]
                return kept
            value = redactor.shown(value, min(room, SHOWN))
            room -= len(value)
            kept.append(value)
        else:
            kept.append(_scrub(value, redactor, seen))
    return kept


def redact_report(report: pytest.TestReport, redactor: Redactor) -> None:
    """Mask secrets in the failure text and every captured section, in place, each cut first
    (see :func:`_scrub`; a captured section to ``SHOWN_TEXT`` characters)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        report.longrepr = (longrepr[0], longrepr[1], redactor.shown(longrepr[2], SHOWN))
    elif longrepr is not None:
        report.longrepr = _scrub(longrepr, redactor, set())
        text = str(report.longrepr)
        masked = redactor.shown(text, 4 * SHOWN_TEXT)
        if masked != text:  # a representation _scrub does not know: flatten it
            report.longrepr = masked
    report.sections = [
        (title, redactor.shown(content, SHOWN_TEXT)) for title, content in report.sections
    ]


def failure_line(report: pytest.TestReport) -> str:
    """The one line that says what broke: the crash message, or the first ``E`` line."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else ""
    if not text:
        raw = str(report.longrepr or "")
        errors = [line[1:].strip() for line in raw.splitlines() if line.startswith("E ")]
        text = errors[0] if errors else (raw.strip().splitlines() or ["failed"])[-1]
    return shorten(" ".join(text.split()), _MAX_MESSAGE)


class _RedactRecords(logging.Filter):
    """Masks a log record's message and traceback in place, once, for every handler."""

    def __init__(self, reporting: Reporting) -> None:
        super().__init__()
        self.reporting = reporting

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.reporting.redactor()
        if redactor is None or getattr(record, "_harness_redacted", False):
            return True
        message = record.getMessage()
        masked = redactor.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        record._harness_redacted = True
        return True


class Reporting:
    def __init__(self, config: pytest.Config, targets: list[alerts.AlertTarget], policy: str):
        self.config = config
        self.targets = targets
        self.policy = policy
        self.html_fragment = ""
        self.notes: list[str] = []
        #: The terminal summary is written, or will never be (a run that did not start): a
        #: warning goes straight to the terminal instead of into ``notes``.
        self.summary_done = False
        self.published: dict[str, Any] | None = None
        self._key_redactor: Redactor | None = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def state(self) -> RunState | None:
        return self.config.stash.get(STATE, None)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionstart(self, session: pytest.Session) -> Generator[None, None, None]:
        """A run that cannot start (unreachable or wrong environment) is a failed run too:
        the nightly job must hear about it. Webhooks only — there is no profile to trust."""
        try:
            result = yield
            self._redact_logs()
            return result
        except pytest.exit.Exception as stop:
            webhooks = [t for t in self.targets if t.kind == "webhook"]
            self.summary_done = True  # a run that did not start has no summary
            if webhooks and not self.is_worker:
                report = {
                    "run_id": os.environ.get("HARNESS_RUN_ID", "(not started)"),
                    "environment": self.config.getoption("harness_env")
                    or os.environ.get("HARNESS_ENV")
                    or "sandbox",
                    "exit_status": stop.returncode,
                    "outcome": outcome.word(int(stop.returncode or 0)),
                    "failures": [{"nodeid": "harness start", "when": "setup", "message": stop.msg}],
                }
                _, warnings = alerts.send(webhooks, self.policy, report)
                for warning in warnings:
                    self._warn(warning)
            raise

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        redactor = self.redactor()
        if redactor is not None:
            redact_report(report, redactor)
        rows = item.stash.get(EVENT_ROWS, None) if report.when == "teardown" else None
        if rows:  # the events fixture's timeline, as a table under the test
            report.extras = [  # type: ignore[attr-defined]
                *getattr(report, "extras", []),
                html_report.html_extra(
                    timeline_html(rows, redactor.text if redactor is not None else str)
                ),
            ]
        return report

    def redactor(self) -> Redactor | None:
        """The worker's redactor (it knows the run's secrets); before a test has built the
        session, one that masks by key alone."""
        state = self.state()
        if state is None:
            return None
        if state.session is not None:
            return state.session.redactor
        if self._key_redactor is None:
            self._key_redactor = Redactor(state.profile.sensitive_keys)
        return self._key_redactor

    def _redact_logs(self) -> None:
        """Log records are masked before any handler of pytest's writes them: the captured
        log sections, ``--log-file`` and live logging (``log_cli``)."""
        logging_plugin = self.config.pluginmanager.get_plugin("logging-plugin")
        if logging_plugin is None or self.state() is None:
            return
        for name in ("caplog_handler", "report_handler", "log_file_handler", "log_cli_handler"):
            handler = getattr(logging_plugin, name, None)
            if isinstance(handler, logging.Handler):
                handler.addFilter(_RedactRecords(self))

    def _record_failure(self, report: pytest.TestReport) -> None:
        state = self.state()
        if self.is_worker or state is None or not report.failed:
            return
        traced = getattr(report, "harness_trace", None) or {}
        state.report.failures.append(
            {
                "nodeid": report.nodeid,
                "when": report.when,
                "message": failure_line(report),
                "trace_id": traced.get("trace_id", ""),
                "service_logs": list(traced.get("service_logs", [])),
            }
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Right after the core plugin's end sequence (its outer wrapper: cleanup, residue
        check, verdict, JSON report) and before pytest-html writes its file: publish."""
        self.publish(session)
        return (yield)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        """pytest-html asks while it writes the file — after :meth:`publish`, which knows
        the verdict and the residue."""
        if self.html_fragment:
            prefix.append(self.html_fragment)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        """Under a test in the HTML report, the service's log lines and the events timeline
        are tables (the report's extras): their plain-text twins are out of the report's
        sections while pytest-html reads them, and back for the terminal's failure summary."""
        self._record_failure(report)
        if not self.config.getoption("htmlpath", None):
            return (yield)
        kept = report.sections
        report.sections = [s for s in kept if not s[0].startswith(HTML_TWINS)]
        try:
            return (yield)
        finally:
            report.sections = kept

    def _progress(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"harness: {message}")

    def publish(self, session: pytest.Session) -> None:
        """After the residue check: summary, HTML section, alerts. Never raises."""
        state = self.state()
        if self.is_worker or state is None:
            return
        faultpoints.reach("alert")
        report = state.report.as_dict(int(session.exitstatus))
        self.published = report
        for step in (self._write_summaries, self._write_html, self._send_alerts, self._junit):
            try:
                step(state, report)
            except Exception as error:  # a report that cannot be written is not a failed run
                self._warn(f"{step.__name__.strip('_').replace('_', ' ')}: {error}")

    def _warn(self, message: str) -> None:
        """Said once: with the summary's notes, or now if the summary is already out."""
        if self.summary_done:
            self._progress(f"WARNING: {message}")
        else:
            self.notes.append(f"WARNING: {message}")

    def _write_summaries(self, state: RunState, report: dict[str, Any]) -> None:
        text = summary.render(report)
        path = self.config.getoption("harness_summary")
        if path:
            summary.write(Path(path), text)
            self.notes.append(f"summary: {path}")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            summary.write(Path(step_summary), text, append=True)
            self.notes.append("summary: appended to $GITHUB_STEP_SUMMARY")

    def _write_html(self, state: RunState, report: dict[str, Any]) -> None:
        if self.config.getoption("htmlpath", None):
            self.html_fragment = html_report.fragment(
                report, state.report.latency_samples
            ) + trends.section(report, state.report.history_runs)

    def _junit(self, state: RunState, report: dict[str, Any]) -> None:
        """JUnit (pytest's own file, written after this) names the deployed build too."""
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is not None and report.get("service_version"):
            xml.add_global_property("service_version", str(report["service_version"]))

    def _send_alerts(self, state: RunState, report: dict[str, Any]) -> None:
        if not self.targets:
            return
        cloudwatch = None
        if any(t.kind == "cloudwatch" for t in self.targets):
            # Opted into with --alert cloudwatch: the harness's own metrics (namespace
            # EnvHarness), the one write it makes to a protected profile's account.
            cloudwatch = Aws(state.profile, read_only=False).cloudwatch
        delivered, warnings = alerts.send(self.targets, self.policy, report, cloudwatch)
        self.notes += [f"alert: sent ({what})" for what in delivered]
        for warning in warnings:
            self._warn(warning)

    @pytest.hookimpl(trylast=True)  # under the core plugin's env-harness section
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.summary_done = True  # the notes below are the last; later warnings say so now
        state = self.state()
        if self.is_worker or state is None:
            return
        rows = latency.summarize(state.report.latency_samples)[: summary.SLOWEST]
        if rows:
            terminalreporter.write_line("slowest endpoints (p50 / p95 / max ms, count):")
            for row in rows:
                terminalreporter.write_line(
                    f"  {row['method']:6} {row['route']:40} {row['p50_ms']:7.0f} "
                    f"{row['p95_ms']:7.0f} {row['max_ms']:7.0f}  n={row['count']}"
                )
        for note in self.notes:
            terminalreporter.write_line(note, yellow=note.startswith("WARNING"))
