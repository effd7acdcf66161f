"""The history side of a run (a pytest plugin loaded with ``harness.pytest_plugin.plugin``).

Owns the ``--history``/``--no-history``, ``--retries``, ``--harness-shard`` (``harness run
--shard``) and flaky-policy options and the ``flaky`` marker; and, in the run: reading the
earlier runs once at the start (the controller; a store that cannot be reached is a warning),
handing the recorded durations to every xdist worker so each computes the same shard, keeping
only this shard's tests, running the tests that may be retried through
:mod:`harness.history.retries`, collecting one record per test (outcome, attempts, time),
counting the failures the quarantine file excuses — and, once the core plugin has decided the
run's verdict (:meth:`History.finish`), classifying every test, putting ``results`` and the
``history`` block into the run's report, and appending the run to the store. Nothing here
fails a run: a problem with the store is a warning line.

PYTEST_DONT_REWRITE: engine code, no test assertions (:mod:`harness.pytest_plugin.rewriting`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.history import classify, quarantine, retries, shards
from harness.history.records import RunRecord, TestRecord, code_commit, from_report
from harness.history.store import (
    DEFAULT_RUNS,
    HistoryConfigError,
    HistoryUnavailable,
    Store,
    open_store,
)
from harness.project import project_root
from harness.reporting import latency
from harness.run import options

PLUGIN_NAME = "harness-history"
#: The xdist workers' copy of the recorded durations (each computes the same shard).
DURATIONS_KEY = "harness_shard_durations"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness")
    group.addoption(
        "--history",
        dest="harness_history",
        metavar="PATH_OR_S3_URL",
        help="the history store for this run: an SQLite file, or s3://BUCKET/PREFIX (default: "
        "the profile's history, else .harness/history.sqlite)",
    )
    group.addoption(
        "--no-history",
        dest="harness_no_history",
        action="store_true",
        help="neither read nor record history (no classification, no trends)",
    )
    group.addoption(
        "--retries",
        dest="harness_retries",
        type=options.non_negative,
        default=0,
        metavar="N",
        help="retry a failed test up to N times, each failed attempt's data cleaned and checked "
        "gone first (a test marked flaky(retries=K) uses K); never a cleanup failure, a "
        "protected refusal or a leak",
    )
    group.addoption(
        "--harness-shard",
        dest="harness_shard",
        type=shards.parse,
        metavar="I/N",
        help="run the I-th of N shards, balanced by the tests' recorded durations "
        "(`harness run --shard I/N`)",
    )
    group.addoption(
        "--flaky-window",
        dest="harness_flaky_window",
        type=options.duration,
        default=f"{int(classify.DEFAULT_WINDOW_DAYS)}d",
        metavar="DURATION",
        help="a test that passed and failed on one commit within this window is flaky "
        "(default 14d)",
    )
    group.addoption(
        "--flaky-passes",
        dest="harness_flaky_passes",
        type=options.positive,
        default=classify.DEFAULT_PASSES,
        metavar="K",
        help="a flaky test leaves that state after K passes in a row (default 5)",
    )


def _refuse_combinations(config: pytest.Config) -> None:
    if config.getoption("harness_no_history") and config.getoption("harness_history"):
        raise pytest.UsageError("--history and --no-history: give one of them")
    if config.getoption("harness_no_history") and config.getoption("harness_alert_on") == "change":
        raise pytest.UsageError(
            "--alert-on change needs the run's history: drop --no-history, or use "
            "--alert-on failure"
        )
    if config.getoption("harness_retries") and config.getoption("reruns", None):
        raise pytest.UsageError(
            "--retries and pytest-rerunfailures' --reruns both retry failed tests: give "
            "--retries alone (it cleans each failed attempt's data first)"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", retries.MARKER)
    from harness.pytest_plugin.plugin import is_active

    if not is_active(config) or config.option.collectonly:
        return
    _refuse_combinations(config)
    root = project_root(config.getoption("harness_config"), os.environ, config.rootpath)
    path = quarantine.path_in(root)
    try:
        entries = quarantine.read(path)
    except quarantine.QuarantineError as error:
        raise pytest.UsageError(str(error)) from None
    config.pluginmanager.register(History(config, entries, path), PLUGIN_NAME)


@dataclass
class _Result:
    """One test as the controller saw its reports."""

    outcome: str = ""
    retried: int = 0
    duration: float = 0.0

    def add(self, report: pytest.TestReport) -> None:
        self.duration += float(getattr(report, "duration", 0.0) or 0.0)
        if report.outcome == "rerun":
            if report.when in ("setup", "call"):
                self.retried += 1
            return
        xfail = hasattr(report, "wasxfail")
        if report.when == "setup":
            if report.failed:
                self.outcome = "error"
            elif report.skipped:
                self.outcome = "xfailed" if xfail else "skipped"
        elif report.when == "call":
            if xfail:
                self.outcome = "xfailed" if report.skipped else "xpassed"
            elif report.failed:
                self.outcome = "failed"
            elif report.skipped:
                self.outcome = "skipped"
            else:
                self.outcome = "passed"
        elif report.when == "teardown" and report.failed and self.outcome != "failed":
            self.outcome = "error"

    def record(self, nodeid: str) -> TestRecord:
        return TestRecord(
            nodeid=nodeid,
            outcome=self.outcome or "error",
            attempts=1 + self.retried,
            duration_s=round(self.duration, 4),
        )


class History:
    def __init__(
        self, config: pytest.Config, entries: dict[str, quarantine.Entry], path: Path
    ) -> None:
        self.config = config
        self.quarantine = entries
        self.quarantine_path = path
        self.today = quarantine.today()
        self.store: Store | None = None
        self.runs: list[RunRecord] = []
        #: The earlier runs were read: classification and trends can be trusted.
        self.read_ok = False
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.results: dict[str, _Result] = {}
        self.quarantined_failed = 0
        self.expired_failed: list[str] = []
        self.commit = ""
        self.durations: dict[str, float] = {}
        self.classified: classify.Classified | None = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def _state(self) -> Any:
        from harness.pytest_plugin.plugin import STATE

        return self.config.stash.get(STATE, None)

    @property
    def enabled(self) -> bool:
        return not self.config.getoption("harness_no_history")

    @property
    def policy(self) -> classify.Policy:
        return classify.Policy(
            window_days=float(self.config.getoption("harness_flaky_window")) / 86400,
            passes=int(self.config.getoption("harness_flaky_passes")),
        )

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """After the core plugin started the run (its ``tryfirst``), before xdist starts its
        workers (its ``trylast``): read the earlier runs once."""
        state = self._state()
        if state is None or self.is_worker:
            return
        self.commit = code_commit(self.config.rootpath)
        if not self.enabled:
            return
        spec = self.config.getoption("harness_history") or state.profile.history
        base = Path.cwd() if self.config.getoption("harness_history") else None
        try:
            self.store = open_store(
                spec, state.state_dir, state.aws, base or Path(state.profile.project_root or ".")
            )
            self.runs = self.store.runs(
                state.profile.expected_environment, DEFAULT_RUNS, exclude_run=str(state.run_id)
            )
            self.read_ok = True
        except (HistoryUnavailable, HistoryConfigError) as error:
            self._warn(f"history store cannot be read ({error}): tests are not classified")
        if self.config.getoption("harness_shard"):
            self.durations = shards.durations(self.runs)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        state = self._state()
        if state is not None:
            state.report.warnings.append(message)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[DURATIONS_KEY] = self.durations

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        default = int(config.getoption("harness_retries"))
        for item in items:
            try:
                retries.allowed(item, default)
            except retries.RetryMarkerError as error:
                raise pytest.UsageError(str(error)) from None
        chosen = config.getoption("harness_shard")
        if not chosen:
            return
        index, count = chosen
        known = (
            dict(config.workerinput.get(DURATIONS_KEY, {}))  # type: ignore[attr-defined]
            if self.is_worker
            else self.durations
        )
        parts = shards.split([item.nodeid for item in items], count, known)
        keep = set(parts[index - 1])
        deselected = [item for item in items if item.nodeid not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if item.nodeid in keep]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        if self._state() is None:
            return None
        count = retries.allowed(item, int(self.config.getoption("harness_retries")))
        if count <= 0:
            return None
        return retries.run(item, nextitem, count)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        retries.note_refusal(item, call)
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        if report.outcome == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """The controller's record of each test (xdist forwards every worker's reports)."""
        if self.is_worker or self._state() is None:
            return
        self.results.setdefault(report.nodeid, _Result()).add(report)
        if not report.failed or hasattr(report, "wasxfail"):
            return
        entry = self.quarantine.get(report.nodeid)
        if entry is None or ("harness_cleanup_failed", True) in report.user_properties:
            return  # a cleanup failure is never excused: the environment comes first
        if entry.active(self.today):
            self.quarantined_failed += 1
        elif report.nodeid not in self.expired_failed:
            self.expired_failed.append(report.nodeid)

    def quarantined_failures(self) -> int:
        """Failed test phases the quarantine file excuses (the verdict leaves them out)."""
        return self.quarantined_failed

    def finish(self, session: pytest.Session, state: Any) -> None:
        """After the verdict: classify, fill the report's ``results`` and ``history``, and
        append the run to the store. Never raises."""
        try:
            self._finish(session, state)
        except Exception as error:  # history is a diagnosis: it never breaks a run's end
            self._warn(f"history: {type(error).__name__}: {error}")

    def _finish(self, session: pytest.Session, state: Any) -> None:
        records = [result.record(nodeid) for nodeid, result in self.results.items()]
        now = classify.Current(
            run_id=str(state.run_id),
            started_at=state.report.started_at,
            commit=self.commit,
            service_version=state.report.service_version,
        )
        if self.read_ok:
            self.classified = classify.classify(records, self.runs, now, self.policy)
        results = []
        for record in records:
            verdict = self.classified.verdicts.get(record.nodeid) if self.classified else None
            entry = self.quarantine.get(record.nodeid)
            record.quarantined = entry is not None and entry.active(self.today)
            record.classification = verdict.classification if verdict else ""
            results.append(
                {
                    "nodeid": record.nodeid,
                    "outcome": record.outcome,
                    "attempts": record.attempts,
                    "duration_s": record.duration_s,
                    "classification": verdict.classification if verdict else None,
                    "failing_since": verdict.failing_since if verdict else None,
                    "flake_rate": verdict.flake_rate if verdict else None,
                    "previous": verdict.previous if verdict else "",
                    "quarantined": record.quarantined,
                }
            )
        state.report.results = classify.ordered(results)
        if self.classified is not None and self.store is not None:
            state.report.history = self.classified.block(self.store.description)
            state.report.history_runs = [r.as_dict() for r in self.runs]
            state.report.changes = {
                "new_leak": classify.new_leak(len(state.report.leaked), self.runs),
                "p95": classify.p95_beyond_trend(
                    latency.summarize(state.report.latency_samples), self.runs
                ),
            }
        for nodeid in self.expired_failed:
            until = self.quarantine[nodeid].until.isoformat()
            self.notes.append(
                f"quarantine of {nodeid} ended {until}: its failure fails the run "
                f"(renew it with harness quarantine add, or fix the test)"
            )
        if self.store is None:
            return
        report = state.report.as_dict(int(session.exitstatus))
        run = from_report(report, state.shard, self.commit, state.report.started_at)
        try:
            self.store.append(run)
            self.notes.append(f"history: run recorded in {self.store.description}")
        except HistoryUnavailable as error:
            self._warn(f"history store cannot be written ({error}): this run is not recorded")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self._state()
        if self.is_worker or state is None:
            return
        write = terminalreporter.write_line
        block = state.report.history
        if block is not None:
            counts = ", ".join(
                f"{len(block[key])} {label}"
                for key, label in (
                    ("new_failures", "new failure(s)"),
                    ("still_failing", "still failing"),
                    ("flaky", "flaky"),
                    ("fixed", "fixed"),
                )
            )
            earlier = f"{block['runs_considered']} earlier run(s)"
            write(f"history ({block['store']}, {earlier}): {counts}")
        labels = {
            classify.NEW_FAILURE: ("NEW FAILURE", {"red": True}),
            classify.STILL_FAILING: ("STILL FAILING", {"red": True}),
            classify.FLAKY: ("FLAKY", {"yellow": True}),
            classify.FIXED: ("FIXED", {"green": True}),
        }
        for result in state.report.results:
            shown = labels.get(str(result.get("classification")))
            if shown is None:
                continue
            said = f" ({result['previous']})" if result.get("previous") else ""
            write(f"  {shown[0]:14} {result['nodeid']}{said}", **shown[1])
        for result in state.report.results:
            if result.get("quarantined") and result["outcome"] in ("failed", "error"):
                entry = self.quarantine[result["nodeid"]]
                write(
                    f"  QUARANTINED    {result['nodeid']}: {result['outcome']}, not failing the "
                    f"run (until {entry.until.isoformat()}: {entry.reason})",
                    yellow=True,
                )
        for note in self.notes:
            write(f"harness: {note}")
        for warning in self.warnings:
            write(f"harness: WARNING: {warning}", yellow=True)
