"""The pytest plugin (the ``pytest11`` entry point): thin hooks over the run lifecycle.

Owns the ``harness`` command-line options, the markers, and the hooks that call into
:mod:`harness.run.lifecycle` at the right moments: check the files the run must write and
replace stale ones (before anything starts), take the process's stop signals
(:mod:`harness.run.interrupts`), start the run before any test (only when the run names a
target, see :func:`is_active`), share one run id and seed with every xdist worker, skip all but
``readonly`` tests on a protected target (and count it), begin each test's trace, attach the
redacted HTTP transcript, the trace id and the service's log lines to failures, and
— first of every plugin's session end — tear down what an interrupted session
holds, clean up each worker, then, once in the controller after its workers are done, finish
the run (residue check, verdict, JSON report), before JUnit, HTML and the summary are written.
A second stop abandons with the report written and what is left listed. Test-facing objects
are handed out by :mod:`harness.pytest_plugin.fixtures`.

PYTEST_DONT_REWRITE: engine code, no test assertions (:mod:`harness.pytest_plugin.rewriting`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from harness import faultpoints
from harness.cleanup.journal import run_dir
from harness.cleanup.liveness import held_by_others
from harness.cleanup.residue import DEFAULT_SCAN_LIMIT
from harness.pytest_plugin.attempts import RETRYING
from harness.reporting import outputs, terminal
from harness.reporting.html_report import html_extra, logs_html, render_logs
from harness.reporting.report import write_failed_start
from harness.run import options, outcome, streams
from harness.run.interrupts import STOP, forward_to_workers, say
from harness.run.lifecycle import (
    FinishOptions,
    RunState,
    StartError,
    TargetOptions,
    finish_run,
    finish_worker,
    left_behind,
    runs_own_sandbox,
    start_controller,
    start_worker,
    unreported_worker_stats,
)
from harness.safety.protect import ProtectedTargetError

#: Bad configuration (kept for callers of the old name; see harness.run.outcome).
EXIT_CONFIG = outcome.CONFIG
#: Reports, summaries and alerts live in their own plugin; the generic fixtures (api, ledger,
#: namespace, fake, env, events …) in theirs, ``account`` in its own, and the history's in
#: its own. All are loaded with this one (and imported at the end of this module, so pytest's
#: rewriter never re-parses them: see rewriting.py).
pytest_plugins = [
    "harness.reporting.plugin",
    "harness.pytest_plugin.fixtures",
    "harness.pytest_plugin.accounts",
    "harness.history.plugin",
]
MARKERS = (
    "smoke: fast post-deploy checks (the CI smoke stage)",
    "nightly: the full suite for scheduled runs",
    "readonly: creates nothing in the environment; the only tests that run on a protected "
    "target (where every write is refused anyway)",
)

STATE = pytest.StashKey[RunState]()
CALL_FAILED = pytest.StashKey[bool]()
#: The test's trace: its id and when it began (the service-log lookup's window).
TRACE = pytest.StashKey[tuple[str, float]]()
PROTECTED_SKIP = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "env-harness (tests against a deployed environment)")
    group.addoption(
        "--env",
        dest="harness_env",
        metavar="NAME",
        help="environment profile in environments.toml (default: $HARNESS_ENV, the file's only "
        "profile, or 'sandbox')",
    )
    group.addoption(
        "--harness",
        dest="harness_on",
        action="store_true",
        help="take charge of this run even where it names no target (no --env, no profiles "
        "file): the default profile, 'sandbox'; `harness run` passes it",
    )
    group.addoption(
        "--harness-config",
        dest="harness_config",
        metavar="PATH",
        help="profiles file (default: $HARNESS_CONFIG, else the nearest environments.toml "
        "from the rootdir up)",
    )
    group.addoption(
        "--base-url", dest="harness_base_url", metavar="URL", help="override the base URL"
    )
    group.addoption(
        "--harness-seed",
        dest="harness_seed",
        type=options.seed,
        metavar="N",
        help="seed for test data (names); a report's seed replays that run's data "
        "(`harness run --seed N` passes it)",
    )
    group.addoption(
        "--allow-env-override",
        dest="harness_allow_env_override",
        action="store_true",
        help="let HARNESS_* variables change the base URL, AWS endpoint or identity of the "
        "profile named with --env (refused otherwise; also $HARNESS_ALLOW_ENV_OVERRIDE=1)",
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
        type=options.seconds,
        default=3.0,
        metavar="SECONDS",
        help="how long the residue check lets asynchronous deletes settle, and keeps looking "
        "for what the service still writes for a leak it removed (default 3)",
    )
    group.addoption(
        "--residue-scan-limit",
        dest="harness_residue_scan_limit",
        type=options.non_negative,
        default=DEFAULT_SCAN_LIMIT,
        metavar="N",
        help="the residue check scans a table for unrecorded leftovers only while it holds at "
        f"most N items (default {DEFAULT_SCAN_LIMIT}; 0: never, by key only)",
    )
    group.addoption(
        "--events-drain",
        dest="harness_events_drain",
        type=options.seconds,
        default=15.0,
        metavar="SECONDS",
        help="before the residue check, wait up to this long for the service's event "
        "consumer to drain its queue (default 15)",
    )


def is_active(config: pytest.Config) -> bool:
    """Installed, the plugin is loaded into every pytest run of the environment; it takes
    charge of a run only when the run names a target: ``--env``, ``--harness-config``,
    ``$HARNESS_ENV``/``$HARNESS_CONFIG``, or an ``environments.toml`` at the rootdir — or
    when told to (``--harness``, which ``harness run`` passes)."""
    if config.getoption("harness_on"):
        return True
    if config.getoption("harness_env") or config.getoption("harness_config"):
        return True
    if os.environ.get("HARNESS_ENV") or os.environ.get("HARNESS_CONFIG"):
        return True
    return (config.rootpath / "environments.toml").is_file()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class _Stop(pytest.exit.Exception):  # type: ignore[name-defined]
    """Ends the run before it starts. pytest writes ``<type name>: <message>`` to stderr for
    an exit during start-up; named so, that is the harness's one line, ``harness: …``."""


_Stop.__name__ = _Stop.__qualname__ = "harness"


def _stop(config: pytest.Config, error: StartError) -> None:
    report_path = config.getoption("harness_report")
    if report_path and not _is_worker(config):
        try:
            write_failed_start(
                Path(report_path),
                error.status,
                str(error),
                os.environ.get("HARNESS_RUN_ID", ""),
                target=error.target,
            )
        except OSError as failure:
            _could_not_write(report_path, failure, error.status)
    raise _Stop(str(error), returncode=error.status)


def _could_not_write(report_path: str, error: OSError, status: int) -> None:
    say(
        f"harness: could not write the JSON report {report_path}: {error.strerror or error} (it "
        f"still says 'incomplete'; exit {status} is the run's verdict)"
    )


def get_state(config: pytest.Config) -> RunState:
    state = config.stash.get(STATE, None)
    if state is None and not is_active(config):
        raise pytest.UsageError(
            "harness: this pytest run names no target, so the harness is off: pass --env NAME "
            "(or --harness for the sandbox), set $HARNESS_ENV, or add environments.toml at the "
            "rootdir (`harness init` writes one)"
        )
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


def _target(config: pytest.Config) -> TargetOptions:
    return TargetOptions(
        env=config.getoption("harness_env"),
        config=config.getoption("harness_config"),
        base_url=config.getoption("harness_base_url"),
        allow_env_override=bool(config.getoption("harness_allow_env_override")),
        root=str(config.rootpath),  # the profiles file is found from pytest's rootdir
    )


def _start_controller(config: pytest.Config) -> None:
    def progress(message: str) -> None:
        sys.stderr.write(f"harness: {message}\n")

    try:
        config.stash[STATE] = start_controller(
            _target(config), config.getoption("harness_seed"), progress
        )
    except StartError as error:
        _stop(config, error)
    except KeyboardInterrupt:  # a stop before the first test: start-up undid what it did
        _stop(
            config,
            StartError(
                f"interrupted ({STOP.signal_name or 'KeyboardInterrupt'}) while starting: "
                f"nothing of the run was left in place",
                outcome.INTERRUPTED,
            ),
        )


def _start_worker(config: pytest.Config) -> None:
    workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
    try:
        config.stash[STATE] = start_worker(
            _target(config),
            workerinput["harness_run_id"],
            int(workerinput["harness_seed"]),
            workerinput["workerid"],
        )
    except StartError as error:
        _stop(config, error)


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
        faultpoints.reach("collection")
        gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash.get(STATE, None)
    if state is None:
        return
    item.stash[TRACE] = (state.trace.begin(), state.trace.started)
    if state.session is not None and "api" in state.session.__dict__:
        state.session.api.new_transcript()


def _trace_failure(item: pytest.Item, report: pytest.TestReport, state: RunState) -> None:
    """A failed phase carries its test's trace id (JSON report, JUnit property) and, when
    the profile names log groups and something carried the trace, the service's own lines
    for it: ``report.harness_trace`` (xdist sends it to the controller), a section for the
    terminal and JUnit, and a table under the test in the HTML report."""
    trace_id, started = item.stash.get(TRACE, (state.trace.trace_id, state.trace.started))
    found: dict[str, Any] = {"trace_id": trace_id, "service_logs": []}
    if ("trace_id", trace_id) not in item.user_properties:  # JUnit reads the teardown's
        item.user_properties.append(("trace_id", trace_id))
        report.user_properties.append(("trace_id", trace_id))
    harness = state.session
    # after a stop, cleanup comes first: no waiting for log lines
    if harness is not None and state.trace.used and state.profile.log_groups and not STOP.requested:
        logs = harness.service_logs
        if logs.enabled:
            found["service_logs"] = logs.lookup(trace_id, started)
            report.sections.append(
                (f"harness: service logs (trace {trace_id})", render_logs(found["service_logs"]))
            )
            extras = list(getattr(report, "extras", []))
            extras.append(html_extra(logs_html(trace_id, found["service_logs"], logs.error)))
            report.extras = extras  # type: ignore[attr-defined]
    report.harness_trace = found  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(ProtectedTargetError):
        # The refusal is the whole story: one line naming the rule and the profile.
        report.longrepr = str(call.excinfo.value)
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    state = item.config.stash.get(STATE, None)
    harness = state.session if state is not None else None
    if report.failed and harness is not None and "api" in harness.__dict__:
        report.sections.append(
            ("harness: HTTP transcript (redacted)", harness.api.transcript.render())
        )
    if report.failed and state is not None:
        _trace_failure(item, report, state)
    if report.skipped and item.stash.get(PROTECTED_SKIP, False) and report.when == "setup":
        report.user_properties.append(("harness_protected_skip", True))
    if report.failed and report.when == "teardown" and _is_cleanup_failure(call.excinfo):
        report.user_properties.append(("harness_cleanup_failed", True))
    return report


#: How the ``ledger`` fixture fails a test's teardown when deleting its data failed
#: (harness/pytest_plugin/fixtures.py): a cleanup failure (exit 6), not a failed test (1).
CLEANUP_FAILURE_PREFIX = "harness cleanup failed"


def _is_cleanup_failure(excinfo: pytest.ExceptionInfo[BaseException] | None) -> bool:
    return (
        excinfo is not None
        and isinstance(excinfo.value, pytest.fail.Exception)
        and str(excinfo.value.msg).startswith(CLEANUP_FAILURE_PREFIX)
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counted in the controller (xdist forwards every worker's reports here)."""
    state = _controller_state(report)
    if state is None:
        return
    state.report.count(report.when, report.outcome, hasattr(report, "wasxfail"))
    if report.when == "setup" and ("harness_protected_skip", True) in report.user_properties:
        state.report.skipped_by_protection += 1
    if ("harness_cleanup_failed", True) in report.user_properties:
        state.cleanup_teardown_failures += 1


_CONTROLLER_CONFIG: list[pytest.Config] = []


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter takes sys.stdout
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    _refuse_negative_workers(config)
    if not _is_worker(config):
        _CONTROLLER_CONFIG.append(config)
    if config.option.collectonly or not is_active(config):
        return
    # Ctrl-C, SIGTERM (CI cancelling a job) and a controller's pass-on: one rule for all
    # (harness/run/interrupts.py); the first is recorded the moment it arrives.
    STOP.reset()
    STOP.install(abandon=lambda: _abandon(config), on_first=lambda: _on_first_stop(config))
    streams.guard()  # a closed stdout (`pytest | head`) must never stop the cleanup
    if not _is_worker(config):
        _check_outputs(config)


def _check_outputs(config: pytest.Config) -> None:
    """Every file the run was asked to write can be written — checked now, before anything
    started — and an earlier run's file at one of those paths is replaced or removed."""
    named = outputs.named(lambda dest: config.getoption(dest, None))
    try:
        outputs.prepare(named, os.environ.get("HARNESS_RUN_ID", ""))
    except (outputs.OutputError, OSError) as error:
        raise pytest.UsageError(str(error)) from None


def _refuse_negative_workers(config: pytest.Config) -> None:
    """xdist takes any whole number for ``-n``: a negative one quietly runs the tests in one
    process. The harness refuses it before anything starts, as ``harness run -n`` does (one
    line, exit 8 through :func:`pytest_cmdline_main`); ``-n 0`` stays xdist's "no workers"."""
    workers = config.getoption("numprocesses", None)
    if isinstance(workers, int) and workers < 0 and is_active(config):
        raise pytest.UsageError(
            f"-n {workers}: give 1 or more workers, or auto (omit -n to run in one process)"
        )


def _on_first_stop(config: pytest.Config) -> None:
    """The controller says so once, and passes the stop on to its own local workers (SIGTERM
    sent to it alone would otherwise never reach their cleanup; a terminal's Ctrl-C reaches
    them anyway, and a worker takes a pass-on after its own stop as nothing)."""
    if _is_worker(config):
        return
    say("\nharness: interrupted — cleaning up (Ctrl-C again to abandon cleanup)")
    state = config.stash.get(STATE, None)
    if state is not None:
        forward_to_workers(run_dir(state.state_dir, str(state.run_id), state.shard))


@pytest.hookimpl(trylast=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """The harness's start-up error was already said in one line (pytest would repeat it as
    ``! _pytest.outcomes.Exit: …``). Stops themselves are handled where they arrive
    (harness/run/interrupts.py), not here."""
    config = _CONTROLLER_CONFIG[0] if _CONTROLLER_CONFIG else None
    if isinstance(excinfo.value, _Stop):
        terminal = config.pluginmanager.get_plugin("terminalreporter") if config else None
        if terminal is not None and hasattr(terminal, "_keyboardinterrupt_memo"):
            terminal._keyboardinterrupt_memo = None


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """A usage error found after the command line was parsed (say a bad ``--alert``) is a
    configuration error of the harness's table (8), in one line — not pytest's 4; any other
    pytest code left unmapped (Ctrl-C before the run started: its 2) is mapped too."""
    try:
        status = yield
    except pytest.UsageError as error:
        if not is_active(config):
            raise
        sys.stderr.write(f"harness: {error}\n")
        return outcome.CONFIG
    if status is None or not is_active(config):
        return status
    # pytest's own codes that reach here (Ctrl-C before the run started: its 2) on the table
    return outcome.from_pytest(int(status))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Counted in the controller: a test file that does not import is exit 9, not 1 or 2."""
    if report.failed:
        for config in _CONTROLLER_CONFIG:
            state = config.stash.get(STATE, None)
            if state is not None:
                state.collection_errors += 1
                return


def pytest_internalerror(excrepr: Any, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """A bug (or a full disk) broke pytest itself: the report says ``internal_error`` (3),
    as the exit status will, rather than staying ``incomplete``."""
    config = _CONTROLLER_CONFIG[0] if _CONTROLLER_CONFIG else None
    state = config.stash.get(STATE, None) if config is not None else None
    if config is None or state is None:
        return
    state.report.errors.append(f"internal error: {excinfo.typename}: {excinfo.value}")
    _write_report(config, state, outcome.INTERNAL_ERROR)


def _abandon(config: pytest.Config) -> None:
    """A second Ctrl-C or SIGTERM: stop cleaning now. The controller says what is still in
    place and how to remove it, and writes the report (``interrupted``, cleanup
    ``abandoned``, ``left_behind``); a worker leaves that to its controller (its journal says
    what it did). The caller exits 130 right after."""
    state = config.stash.get(STATE, None)
    if state is None or _is_worker(config):
        return
    say("\nharness: cleanup abandoned.")
    try:
        _add_worker_stats(state)
        left = left_behind(state)
    except Exception as error:  # the journals are unreadable: say so, still write the report
        left = []
        state.report.errors.append(f"could not read the run's journals: {error}")
    state.report.interrupted = {"signal": STOP.signal_name, "cleanup": "abandoned"}
    if runs_own_sandbox(state):  # it stops with this process, and all the run made in it
        say("  the sandbox this run started stops with it: nothing of the run is left anywhere")
        shutil.rmtree(run_dir(state.state_dir, str(state.run_id), state.shard), True)
        _write_report(config, state, outcome.INTERRUPTED)
        return
    state.report.left_behind = left
    for item in left:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(item.items()) if k != "kind")
        say(f"  still in place: {item['kind']}({shown})")
    say(
        f"  the journal of run {state.run_id} is kept; once this process has ended, remove "
        f"what is left with\n"
        f"    harness recover {state.run_id}        (this machine, any time)\n"
        f"    harness sweep --env {state.profile.name} --yes   (anywhere, once it is older "
        f"than the profile's test_data_ttl)"
    )
    _write_report(config, state, outcome.INTERRUPTED)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONTROLLER_CONFIG:
        _CONTROLLER_CONFIG.remove(config)
    # A run nested in another pytest's test (pytester in-process) gives the signals back; a
    # run of its own keeps them settled to its report's status until the process ends.
    STOP.uninstall(keep_settled="PYTEST_CURRENT_TEST" not in os.environ)
    state = config.stash.get(STATE, None)
    if state is not None:
        state.release_lock()
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
    """``--keep-on-failure`` and the test failed — not an attempt about to be retried, whose
    data is cleaned first (:mod:`harness.history.retries`)."""
    return (
        bool(item.config.getoption("harness_keep_on_failure"))
        and item.stash.get(CALL_FAILED, False)
        and not item.stash.get(RETRYING, False)
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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """The end sequence, before any other plugin's (JUnit, HTML …): a worker cleans what its
    ledger holds and hands over its figures; the controller waits for its workers' cleanup,
    cleans its own, runs the residue check, decides the exit status and writes the JSON
    report. Another plugin's end failing after that (an unwritable JUnit path) is a warning
    line — it can change neither the verdict nor the report."""
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None:
        return (yield)
    STOP.finishing()
    _tear_down_fixtures(session)
    if _is_worker(config):
        stats = finish_worker(state)
        state.release_lock()  # its cleanup is over: its journal may be recovered from now on
        config.workeroutput["harness"] = stats  # type: ignore[attr-defined]
        return (yield)
    try:
        _end_run(session, state)
    finally:
        state.release_lock()
    try:
        return (yield)
    except Exception as error:
        say(
            f"harness: WARNING: after the run, {type(error).__name__}: {error} (the run's "
            f"verdict stands: exit {int(session.exitstatus)})"
        )
        return None
    finally:
        # Last of all — after the summary, the HTML and the alerts — so a run killed before
        # its very end leaves 'incomplete', never a verdict its exit status contradicts.
        faultpoints.reach("report")
        _write_report(config, state, int(session.exitstatus))
        STOP.settle(int(session.exitstatus))


def _tear_down_fixtures(session: pytest.Session) -> None:
    """What an interrupted session still holds (fixtures of the test that was stopped, and
    module and session fixtures) is torn down first — their teardowns may create, delete or
    sleep — as pytest's own end would do it (its runner's ``pytest_sessionfinish``, which then
    finds nothing left). A failing teardown is one line; cleanup goes on."""
    setup_state = getattr(session, "_setupstate", None)
    if setup_state is None:
        return
    try:
        setup_state.teardown_exact(None)
    except Exception as error:
        say(f"harness: a fixture's teardown failed: {type(error).__name__}: {error}")


def _end_run(session: pytest.Session, state: RunState) -> None:
    """Controller, after the last test: workers' cleanup, its own, the residue check, the
    verdict and the JSON report."""
    config = session.config
    terminal = config.pluginmanager.get_plugin("terminalreporter")

    def progress(message: str) -> None:
        if terminal is not None:
            with contextlib.suppress(OSError, ValueError):
                terminal.write_line(f"harness: {message}")

    _wait_for_workers(config, state, progress)
    stats = finish_worker(state)
    state.worker_stats.append(stats)
    _add_worker_stats(state)
    options = FinishOptions(
        settle=float(config.getoption("harness_residue_settle")),
        drain=float(config.getoption("harness_events_drain")),
        scan_limit=int(config.getoption("harness_residue_scan_limit")),
    )
    clean = finish_run(state, options, progress)
    history = config.pluginmanager.get_plugin("harness-history")
    excused = history.quarantined_failures() if history is not None else 0
    session.exitstatus = outcome.decide(
        outcome.RunFacts(
            pytest_status=int(session.exitstatus),
            interrupted=STOP.requested,
            collection_errors=state.collection_errors,
            tests_failed=max(0, session.testsfailed - state.cleanup_teardown_failures - excused),
            cleanup_failures=state.cleanup_teardown_failures,
            clean=clean,
            quarantined_failures=excused,
        )
    )
    if history is not None:  # classify and record, once the verdict is known
        history.finish(session, state)
    if STOP.requested:
        state.report.interrupted = {"signal": STOP.signal_name, "cleanup": "finished"}
    if STOP.requested or not clean:
        state.report.left_behind = left_behind(state)


def _wait_for_workers(
    config: pytest.Config, state: RunState, progress: Callable[[str], None]
) -> None:
    """Under xdist: after a stop, let every worker finish its cleanup (each holds its journal
    lock until then) before its node is torn down — xdist's teardown would otherwise interrupt
    a worker still cleaning after 5 s. Then tear the nodes down, so their figures and
    journals are final before the residue check."""
    dsession = config.pluginmanager.get_plugin("dsession")
    nodes = getattr(dsession, "nodemanager", None)
    if nodes is None:
        return
    if STOP.requested:
        folder = run_dir(state.state_dir, str(state.run_id), state.shard)
        deadline = time.monotonic() + WORKER_CLEANUP_WAIT
        said = False
        mine = [state.lock.path] if state.lock is not None else []
        passed_on = time.monotonic()
        while time.monotonic() < deadline and (busy := held_by_others(folder, mine)):
            if not said:
                progress(f"waiting for {len(busy)} worker(s) to finish their cleanup…")
                said = True
            if time.monotonic() - passed_on >= 1.0:
                # a worker that came up after the stop (it had no lock to be found by then)
                # waits for tests that never come: pass the stop on again; a worker that
                # already stopped takes a second pass-on as nothing
                forward_to_workers(folder)
                passed_on = time.monotonic()
            time.sleep(0.1)
    nodes.teardown_nodes()


#: How long a stopped controller waits for its workers' cleanup before tearing them down.
WORKER_CLEANUP_WAIT = 120.0


def _add_worker_stats(state: RunState) -> None:
    """Every worker's figures into the report, once: those that arrived, and — for a worker
    stopped before it could send them — what its journal says."""
    if state.stats_added:
        return
    state.stats_added = True
    state.worker_stats.extend(unreported_worker_stats(state))
    for worker_stats in state.worker_stats:
        state.report.add_worker_stats(worker_stats)


def _write_report(config: pytest.Config, state: RunState, status: int) -> None:
    """The JSON report, whole or not at all; a failure to write it is one line, never a
    crash of the end sequence (the file then still says ``incomplete``)."""
    report_path = config.getoption("harness_report")
    if not report_path:
        return
    try:
        state.report.write(Path(report_path), status)
    except OSError as error:
        _could_not_write(report_path, error, status)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or _is_worker(config):
        return
    terminalreporter.section("env-harness", sep="-")
    for line in terminal.summary(state, config.getoption("harness_report")):
        terminalreporter.write_line(line.text, **({line.colour: True} if line.colour else {}))


# Imported before pytest registers them (by ``pytest_plugins`` above, which marks them for
# assertion rewriting): here, past the engine's unmarking, they load as plain modules.
for _name in pytest_plugins:
    importlib.import_module(_name)
