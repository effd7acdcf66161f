"""The pytest plugin: the run's lifecycle around the engine.

Owns the ``harness`` command-line options and the hooks that give a pytest run its
guarantees: resolve the profile and prove the target before any test (starting the local
sandbox when the profile asks for one), share one run id and seed with every xdist worker,
skip all but ``readonly`` tests on a protected target (and count it), attach the redacted HTTP
transcript to failures, clean up whatever a worker left (also after Ctrl-C), then — once, in
the controller, after the last worker — run the residue check, write the JSON report and turn
a leak into a failed run. Test-facing objects are handed out by ``fixtures/``, never here.
"""

from __future__ import annotations

import gc
import os
import random
import resource
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.cleanup.journal import default_state_dir, run_dir
from harness.cleanup.lease import Lease
from harness.cleanup.recovery import dead_runs, recover, write_owner
from harness.cleanup.residue import ResidueResult, kept_matcher
from harness.cleanup.residue import check as residue_check
from harness.clients.aws import Aws
from harness.config import ConfigError, Profile, load_profile
from harness.events.quiescence import wait_for_quiescence
from harness.kinds import load_kinds
from harness.kinds.lease import LeaseKind
from harness.namespace import Namespace, RunId, shard_part, worker_part
from harness.reporting.report import RunReport
from harness.run.local_sandbox import LocalSandbox, SandboxError, apply_exports
from harness.run.session import HarnessSession
from harness.safety import preflight
from harness.safety.guards import Owner

EXIT_CONFIG = 2
#: Reports, summaries and alerts (issue 6) live in their own plugin, loaded with this one.
pytest_plugins = ["harness.reporting.plugin"]


@dataclass
class RunState:
    """What one process knows about the run."""

    profile: Profile
    run_id: RunId
    seed: int
    worker: str
    state_dir: Path
    report: RunReport
    shard: str = ""
    #: The controller's AWS clients (built for preflight, reused by the session, the lease and
    #: the residue check: a boto3 client costs ~0.1 s to build).
    aws: Aws | None = None
    sandbox: LocalSandbox | None = None
    lease: Lease | None = None
    session: HarnessSession | None = None
    residue: ResidueResult | None = None
    worker_stats: list[dict[str, Any]] = field(default_factory=list)

    def harness_session(self) -> HarnessSession:
        if self.session is None:
            namespace = Namespace(run=self.run_id, worker=self.worker)
            self.session = HarnessSession(
                self.profile, namespace, self.seed, self.state_dir, shard=self.shard
            )
            if self.aws is not None:
                self.session.aws = self.aws
        return self.session


STATE = pytest.StashKey[RunState]()
CALL_FAILED = pytest.StashKey[bool]()
PROTECTED_SKIP = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "env-harness (tests against a deployed environment)")
    group.addoption(
        "--env",
        dest="harness_env",
        metavar="NAME",
        help="environment profile in environments.toml (default: $HARNESS_ENV or 'sandbox')",
    )
    group.addoption(
        "--harness-config",
        dest="harness_config",
        metavar="PATH",
        help="profiles file (default: $HARNESS_CONFIG or ./environments.toml)",
    )
    group.addoption(
        "--base-url", dest="harness_base_url", metavar="URL", help="override the base URL"
    )
    group.addoption(
        "--harness-seed",
        dest="harness_seed",
        type=int,
        metavar="N",
        help="seed for test data (names); a report's seed replays that run's data",
    )
    group.addoption(
        "--harness-report",
        dest="harness_report",
        metavar="PATH",
        help="write the JSON run report to PATH",
    )
    group.addoption(
        "--keep-on-failure",
        dest="harness_keep_on_failure",
        action="store_true",
        help="keep a failed test's resources for debugging (the sweeper removes them later)",
    )
    group.addoption(
        "--residue-settle",
        dest="harness_residue_settle",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="how long the residue check lets asynchronous deletes settle (default 3)",
    )
    group.addoption(
        "--events-drain",
        dest="harness_events_drain",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="before the residue check, wait up to this long for the service's event "
        "consumer to drain its queue (default 15)",
    )


def is_active(config: pytest.Config) -> bool:
    """Installed, the plugin is loaded into every pytest run of the environment; it takes
    charge of a run only when the run names a target: ``--env``, ``--harness-config``,
    ``$HARNESS_ENV``/``$HARNESS_CONFIG``, or an ``environments.toml`` at the rootdir."""
    if config.getoption("harness_env") or config.getoption("harness_config"):
        return True
    if os.environ.get("HARNESS_ENV") or os.environ.get("HARNESS_CONFIG"):
        return True
    return (config.rootpath / "environments.toml").is_file()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _stop(message: str) -> None:
    pytest.exit(f"harness: {message}", returncode=EXIT_CONFIG)


def _load(config: pytest.Config) -> Profile:
    overrides = {"base_url": config.getoption("harness_base_url")}
    return load_profile(
        config.getoption("harness_env"), config.getoption("harness_config"), overrides
    )


def get_state(config: pytest.Config) -> RunState:
    state = config.stash.get(STATE, None)
    if state is None:
        raise pytest.UsageError("harness: the run was not set up (was --collect-only given?)")
    return state


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or not is_active(config):
        return
    if _is_worker(config):
        _start_worker(config)
    else:
        _start_controller(config)


def _start_controller(config: pytest.Config) -> None:
    try:
        run_id = (
            RunId.parse(os.environ["HARNESS_RUN_ID"])
            if os.environ.get("HARNESS_RUN_ID")
            else RunId.generate()
        )
    except ValueError as error:
        _stop(f"HARNESS_RUN_ID: {error}")
    seed = config.getoption("harness_seed")
    if seed is None:
        seed = int(os.environ.get("HARNESS_SEED") or random.SystemRandom().randrange(2**32))
    sandbox = None
    try:
        profile = _load(config)
        if profile.needs_local_sandbox:
            sys.stderr.write("harness: starting the local sandbox…\n")
            log = default_state_dir() / "sandbox" / f"{run_id}.log"
            sandbox = LocalSandbox.start(log)
            apply_exports(sandbox.exports, os.environ)
            profile = _load(config)
        shard = shard_part(os.environ.get("HARNESS_SHARD"))
        identity = preflight.check_service(profile)
        aws = Aws(profile)
        preflight.check_aws(profile, aws)
    except (ConfigError, SandboxError, ValueError) as error:
        if sandbox is not None:
            sandbox.stop()
        _stop(str(error))
    os.environ["HARNESS_RUN_ID"] = str(run_id)
    os.environ["HARNESS_SEED"] = str(seed)
    state = RunState(
        profile=profile,
        run_id=run_id,
        seed=seed,
        worker=worker_part(None, os.environ.get("HARNESS_SHARD")),
        state_dir=default_state_dir(),
        report=RunReport(
            str(run_id), profile.expected_environment, profile.name, profile.base_url, seed
        ),
        shard=shard,
        aws=aws,
        sandbox=sandbox,
    )
    state.report.identity = identity
    config.stash[STATE] = state
    write_owner(state.state_dir, str(run_id), profile.name, profile.base_url, shard)
    if not profile.is_protected:  # a protected target gets no writes at all, not even these
        try:
            _recover_dead_runs(state, aws)
            # clients of its own: the refresh thread must not share boto3 resources (not
            # thread-safe); acquire() writes once here, so they are built in this thread
            state.lease = Lease(LeaseKind(profile, aws.sibling()), str(run_id), shard)
            state.lease.acquire()
        except Exception as error:
            _stop(f"could not take the run's lease or recover dead runs: {error}")


def _recover_dead_runs(state: RunState, aws: Aws) -> None:
    """Finish the cleanup of runs that died on this machine against this same target."""
    for run in dead_runs(state.state_dir, state.profile.base_url):
        result = recover(run, load_kinds(state.profile, aws))
        sys.stderr.write(
            f"harness: recovered dead run {run.run_id}: {len(result.deleted)} deleted, "
            f"{len(result.absent)} already gone, {len(result.failed + result.refused)} failed\n"
        )


def _start_worker(config: pytest.Config) -> None:
    workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
    try:
        profile = _load(config)
    except ConfigError as error:
        _stop(str(error))
    run_id = RunId.parse(workerinput["harness_run_id"])
    seed = int(workerinput["harness_seed"])
    config.stash[STATE] = RunState(
        profile=profile,
        run_id=run_id,
        seed=seed,
        worker=worker_part(workerinput["workerid"], os.environ.get("HARNESS_SHARD")),
        state_dir=default_state_dir(),
        report=RunReport(str(run_id), profile.expected_environment, profile.name, "", seed),
        shard=shard_part(os.environ.get("HARNESS_SHARD")),
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the run id and seed to each worker."""
    state = get_state(node.config)
    node.workerinput["harness_run_id"] = str(state.run_id)
    node.workerinput["harness_seed"] = state.seed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.profile.is_protected:
        return
    reason = (
        f"protected target [{state.profile.name}]: only tests marked readonly run "
        f"(set protected = false in the profile to allow writes)"
    )
    for item in items:
        if item.get_closest_marker("readonly") is None:
            item.add_marker(pytest.mark.skip(reason=reason))
            item.stash[PROTECTED_SKIP] = True


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything built so far — imported modules, boto3's loaded service models, the
    collected items — lives until the run ends. ``gc.freeze`` moves it out of the cyclic
    collector's way, so every full collection (pytest's own at the end of the session and
    the interpreter's at exit among them) scans only what the tests allocated: ~0.4 s less
    client CPU per run in the overhead bench (docs/performance.md)."""
    if session.config.stash.get(STATE, None) is not None:
        gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash.get(STATE, None)
    if state is not None and state.session is not None and "api" in state.session.__dict__:
        state.session.api.new_transcript()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    state = item.config.stash.get(STATE, None)
    harness = state.session if state is not None else None
    if report.failed and harness is not None and "api" in harness.__dict__:
        report.sections.append(
            ("harness: HTTP transcript (redacted)", harness.api.transcript.render())
        )
    if report.skipped and item.stash.get(PROTECTED_SKIP, False) and report.when == "setup":
        report.user_properties.append(("harness_protected_skip", True))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counted in the controller (xdist forwards every worker's reports here)."""
    state = _controller_state(report)
    if state is None:
        return
    state.report.count(report.when, report.outcome, hasattr(report, "wasxfail"))
    if report.when == "setup" and ("harness_protected_skip", True) in report.user_properties:
        state.report.skipped_by_protection += 1


_CONTROLLER_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):
        _CONTROLLER_CONFIG.append(config)
    if threading.current_thread() is threading.main_thread():
        # CI cancelling a job sends SIGTERM: take the same path as Ctrl-C, so cleanup runs.
        signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """The first Ctrl-C ends the tests and starts cleanup; a second one during cleanup stops
    it after saying what is left and how to remove it later."""
    config = _CONTROLLER_CONFIG[0] if _CONTROLLER_CONFIG else None
    sys.stderr.write("\nharness: interrupted — cleaning up (Ctrl-C again to abandon cleanup)\n")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: _abandon_cleanup(config))


def _abandon_cleanup(config: pytest.Config | None) -> None:
    state = config.stash.get(STATE, None) if config is not None else None
    lines = ["", "harness: cleanup abandoned."]
    if state is not None:
        harness = state.session
        left = harness.ledger.live() if harness is not None and "ledger" in harness.__dict__ else []
        lines += [f"  still in place: {r.describe()}" for r in left]
        lines += [
            f"  the journal of run {state.run_id} is kept; remove what is left with",
            f"    harness recover {state.run_id}        (this machine, any time)",
            f"    harness sweep --env {state.profile.name} --yes   (anywhere, once it is older "
            f"than the profile's test_data_ttl)",
        ]
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    os._exit(130)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONTROLLER_CONFIG:
        _CONTROLLER_CONFIG.remove(config)
    state = config.stash.get(STATE, None)
    if state is not None and state.sandbox is not None:
        state.sandbox.stop()
        state.sandbox = None


def _controller_state(report: pytest.TestReport) -> RunState | None:
    for config in _CONTROLLER_CONFIG:
        state = config.stash.get(STATE, None)
        if state is not None:
            return state
    return None


def keeps_on_failure(item: pytest.Item) -> bool:
    return bool(item.config.getoption("harness_keep_on_failure")) and item.stash.get(
        CALL_FAILED, False
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: Any) -> None:
    """xdist controller: when the last worker is up, the run's worker start-up is over."""
    state = node.config.stash.get(STATE, None)
    if state is not None:
        state.report.workers_ready_seconds = round(time.time() - state.report.started_at, 3)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's ledger figures."""
    stats = getattr(node, "workeroutput", {}).get("harness")
    state = node.config.stash.get(STATE, None)
    if stats and state is not None:
        state.worker_stats.append(stats)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None:
        return
    stats = _finish_worker(state)
    if _is_worker(config):
        config.workeroutput["harness"] = stats  # type: ignore[attr-defined]
        return
    state.worker_stats.append(stats)
    for worker_stats in state.worker_stats:
        state.report.add_worker_stats(worker_stats)
    _finish_run(session, state)


def _finish_worker(state: RunState) -> dict[str, Any]:
    """Clean whatever this worker's ledger still holds (interrupts, session-scoped data)."""
    stats: dict[str, Any] = {
        "worker": state.worker,
        # Linux reports ru_maxrss in KiB: this process's peak resident memory so far.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "created": 0,
        "cleaned": 0,
        "failed": 0,
        "kept": 0,
        "failures": [],
        "kept_ids": [],
    }
    harness = state.session
    if harness is None or "ledger" not in harness.__dict__:
        return stats
    leftover = harness.ledger.cleanup()
    failures = [f"{r.describe()}: {r.error}" for r in leftover.failed + leftover.refused]
    ledger_stats = harness.ledger.stats
    stats.update(
        created=ledger_stats.created,
        cleaned=ledger_stats.cleaned,
        failed=ledger_stats.failed,
        kept=ledger_stats.kept,
        failures=[harness.redactor.text(f) for f in failures],
        kept_ids=[r.ids for r in harness.ledger.kept],
        event_latency=harness.event_latency.samples(),
    )
    harness.close()
    return stats


def _finish_run(session: pytest.Session, state: RunState) -> None:
    """Controller, after the last worker: the residue check, the report, the exit status."""
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")

    def progress(message: str) -> None:
        if terminal is not None:
            terminal.write_line(f"harness: {message}")

    if state.lease is not None:
        try:
            state.lease.release()
        except Exception as error:  # the residue check below finds and reports it
            progress(f"could not release the run's lease: {type(error).__name__}: {error}")
        state.lease = None
    prefix = f"{state.run_id}-{state.shard}"
    progress(f"residue check for {prefix}…")
    aws = state.aws or Aws(state.profile)
    kinds = load_kinds(state.profile, aws)
    kept_ids = [ids for stats in state.worker_stats for ids in stats.get("kept_ids", [])]
    _wait_for_events_to_drain(session, state, aws, progress)
    try:
        state.residue = residue_check(
            kinds,
            prefix,
            Owner(run=state.run_id),
            settle=float(session.config.getoption("harness_residue_settle")),
            is_kept=kept_matcher(kept_ids),
            remove=not state.profile.is_protected,
            progress=progress,
        )
    except Exception as error:  # the environment went away: report, do not crash
        progress(f"residue check could not run: {type(error).__name__}: {error}")
        state.report.cleanup_failures.append(f"residue check failed: {error}")
    if state.residue is not None:
        state.report.leaked = [{"kind": f.kind, **f.ids} for f in state.residue.leaked]
    unclean = state.residue is None or bool(state.residue.leaked)
    if (unclean or state.report.cleanup_failures) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    report_path = session.config.getoption("harness_report")
    if report_path:
        state.report.write(Path(report_path), int(session.exitstatus))
    clean = state.residue is not None and state.residue.clean
    if clean and not state.report.cleanup_failures and not kept_ids:
        _forget_run(state)


def _wait_for_events_to_drain(
    session: pytest.Session, state: RunState, aws: Aws, progress: Callable[[str], None]
) -> None:
    """Asynchronous residue: let the service's consumer finish what the run set off, so a
    record it writes late is caught by the residue check instead of missed."""
    timeout = float(session.config.getoption("harness_events_drain"))
    if not state.profile.processor_queue_url or timeout <= 0:
        return
    try:
        drained = wait_for_quiescence(
            aws.sqs, state.profile.processor_queue_url, timeout=timeout, progress=progress
        )
    except Exception as error:  # a read-only probe: report and go on to the residue check
        progress(f"could not watch the consumer's queue: {type(error).__name__}: {error}")
        return
    if not drained:
        progress(f"the consumer's queue did not drain in {timeout:g}s; checking residue anyway")


def _forget_run(state: RunState) -> None:
    """A clean run leaves no journal behind (crash recovery only needs unsettled runs)."""
    shutil.rmtree(run_dir(state.state_dir, str(state.run_id), state.shard), ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or _is_worker(config):
        return
    tr = terminalreporter
    report = state.report
    tr.section("env-harness", sep="-")
    tr.write_line(
        f"run {state.run_id} on [{state.profile.name}] {state.profile.base_url} (seed {state.seed})"
    )
    tr.write_line(
        f"resources: {report.resources['created']} created, {report.resources['cleaned']} "
        f"cleaned, {report.resources['kept']} kept, {report.resources['failed']} cleanup failed"
    )
    if report.skipped_by_protection:
        tr.write_line(
            f"{report.skipped_by_protection} test(s) skipped: protected target "
            f"(only readonly tests run)",
            yellow=True,
        )
    for failure in report.cleanup_failures:
        tr.write_line(f"CLEANUP FAILED: {failure}", red=True)
    residue = state.residue
    if residue is None:
        tr.write_line("residue check: not run", red=True)
    elif residue.clean:
        tr.write_line("residue check: clean (nothing left carrying this run's namespace)")
    else:
        tr.write_line(f"RESIDUE: {len(residue.leaked)} leaked item(s) — run failed", red=True)
        for item in residue.leaked:
            tr.write_line(f"  leaked {item.summary}", red=True)
        for item, why in residue.uncleaned:
            tr.write_line(f"  could not remove {item.summary}: {why}", red=True)
        if residue.cleaned:
            tr.write_line(f"  {len(residue.cleaned)} leaked item(s) removed after the check")
    if residue is not None and residue.kept:
        tr.write_line(
            f"kept for debugging (--keep-on-failure): {len(residue.kept)} item(s) of run "
            f"{state.run_id}:",
            yellow=True,
        )
        for item in residue.kept:
            tr.write_line(f"  kept {item.summary}", yellow=True)
        tr.write_line(
            f"  list them with `harness sweep --env {state.profile.name} --older-than 0` "
            f"(a dry run); they are swept once older than the profile's test_data_ttl",
            yellow=True,
        )
    report_path = config.getoption("harness_report")
    if report_path:
        tr.write_line(f"report: {report_path}")
