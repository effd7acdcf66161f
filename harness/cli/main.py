"""The ``harness`` command line: ``run``, ``sweep``, ``recover``, ``doctor``, ``residue``,
``env up``/``env down`` (those two in :mod:`harness.cli.env`) and ``history``,
``quarantine``, ``merge`` (in :mod:`harness.cli.history`).

Owns turning a user's intent into a pytest invocation (profile, suite selection, report
path, workers). Everything a run guarantees is done by the pytest plugin, so ``harness run``
and plain ``pytest`` behave the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from harness import faultpoints
from harness.cleanup.journal import default_state_dir
from harness.cli.targets import RunStillAlive, liveness_of, reach, wait_until_over

# Only light imports here: `harness run` starts the sandbox before the heavy ones (pytest,
# boto3, the plugins), so the two start-ups overlap. Commands import what they need.
from harness.config import DEFAULT_SWEEP_MAX as DEFAULT_MAX
from harness.config import ConfigError, TargetError
from harness.kinds.registry import load_profile
from harness.namespace import RunId
from harness.reporting import outputs
from harness.run import options, outcome, streams
from harness.run.interrupts import STOP, say
from harness.run.local_sandbox import (
    LocalSandbox,
    PendingSandbox,
    SandboxError,
    mark_started_sandbox,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from harness.cleanup.liveness import Claim
    from harness.kinds import Kind

#: ``harness sweep --segments``: more parallel scans than this only contend for one client.
MAX_SEGMENTS = 64
SUITES = {
    "smoke": ["-m", "smoke"],
    "nightly": ["-m", "smoke or nightly"],
    "all": [],
}
#: Start-up cost without use in the suites (~0.7 s per xdist worker); see pytest.ini.
UNUSED_PLUGINS = ["-p", "no:faker", "-p", "no:hypothesispytest"]
#: This process imported the engine (and the adapters, to validate the profile) before pytest
#: started: pytest cannot rewrite their asserts, which they do not need.
QUIET_REWRITE = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]

DESCRIPTION = """\
env-harness: idempotent integration tests against a deployed environment.

Every run gets a namespace (itest-<utc time>-<random>-<worker>) stamped on everything it
creates; a write-ahead ledger cleans it up on pass, fail or Ctrl-C; a residue check fails the
run if anything carrying the namespace is left behind.
"""

RUN_EPILOG = """\
Targets: with HARNESS_BASE_URL set (or a profile with base_url), that environment; otherwise
the embedded sandbox is started for the run and stopped after it.
Arguments harness does not know are passed to pytest, e.g.
  harness run --suite smoke -- -x -k login
  harness run --env staging suites/auth
Reports (pytest options, so plain pytest takes them too):
  --report PATH (JSON)  --junitxml PATH  --html PATH (self-contained)  --summary PATH
  (Markdown; also appended to $GITHUB_STEP_SUMMARY when set)
  --alert webhook=URL | --alert cloudwatch  (repeatable)  --alert-on failure|always|change
  An alert that cannot be delivered is a warning; it never changes the exit status.
Exit status (also `outcome` in the JSON report): 0 passed, nothing leaked; 1 a test
failed; 3 internal error; 5 no tests selected; 6 tests passed but something leaked or a
cleanup failed; 7 target unreachable or not the profile's environment; 8 bad configuration or
usage; 9 a test file does not import; 10 the run id is in use by a live run; 130 interrupted
(Ctrl-C, SIGTERM).
"""


class UsageError(Exception):
    """A bad command line: one line, exit 8."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line naming the fix and exit 8 (the
    harness's "bad configuration or usage"), not a usage block and argparse's 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="run the integration suites against an environment (default: a fresh sandbox)",
        description="Run the integration suites with cleanup, residue check and a JSON report.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    run.add_argument(
        "--env",
        metavar="NAME",
        help="profile in environments.toml (default: $HARNESS_ENV, the file's default = "
        '"NAME", its only profile, or sandbox)',
    )
    run.add_argument(
        "--suite", choices=sorted(SUITES), default="all", help="which tests (default: all)"
    )
    run.add_argument(
        "--report",
        metavar="PATH",
        default="harness-report.json",
        help="JSON run report (default: harness-report.json)",
    )
    run.add_argument(
        "-n",
        dest="workers",
        metavar="N",
        type=options.workers,
        help="parallel workers (pytest-xdist): 1 or more, or auto",
    )
    run.add_argument(
        "--seed",
        type=options.seed,
        metavar="N",
        help="seed of the test data; a report's seed replays that run's data",
    )
    run.add_argument(
        "--history",
        metavar="PATH_OR_S3_URL",
        help="history store for this run: an SQLite file or s3://BUCKET/PREFIX (default: the "
        "profile's history, else .harness/history.sqlite)",
    )
    run.add_argument("--no-history", action="store_true", help="neither read nor record history")
    run.add_argument(
        "--retries",
        type=options.non_negative,
        metavar="N",
        help="retry a failed test up to N times, each failed attempt's data cleaned and checked "
        "gone first",
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="run the I-th of N shards, balanced by recorded durations (sets HARNESS_SHARD=I "
        "for the run's namespace; every shard shares HARNESS_RUN_ID)",
    )
    run.add_argument(
        "--keep-on-failure",
        action="store_true",
        help="keep a failed test's resources for debugging",
    )
    run.add_argument(
        "--residue-settle",
        type=options.seconds,
        metavar="SECONDS",
        help="how long the residue check lets asynchronous deletes settle (default 3)",
    )
    run.add_argument(
        "--events-drain",
        type=options.seconds,
        metavar="SECONDS",
        help="wait up to this long for the service's consumer to drain (default 15)",
    )
    _allow_override(run)
    sweep = commands.add_parser(
        "sweep",
        help="find and delete what crashed runs left behind (dry run unless --yes)",
        description=(
            "Find every item carrying a harness namespace (itest-…) in the profile's tables, "
            "grouped by run, skipping runs that are still alive (their lease is fresh) and runs "
            "younger than --older-than. Shows the plan; deletes in batches only with --yes."
        ),
        formatter_class=argparse.RawTextHelpFormatter,
    )
    sweep.add_argument(
        "--env",
        metavar="NAME",
        help="profile (default: $HARNESS_ENV, the file's default, its only profile, or sandbox)",
    )
    sweep.add_argument(
        "--older-than",
        metavar="DURATION",
        type=options.duration,
        help="only runs older than this, e.g. 30m, 2h, 0 (default: the profile's test_data_ttl)",
    )
    sweep.add_argument("--yes", action="store_true", help="really delete (default: dry run)")
    sweep.add_argument(
        "--max",
        type=options.positive,
        default=DEFAULT_MAX,
        metavar="N",
        help=f"refuse to delete more than N items (default {DEFAULT_MAX})",
    )
    sweep.add_argument(
        "--segments",
        default="1",
        metavar="N",
        help="scan each table as N parallel segments (TotalSegments; default 1, at most 64)",
    )
    sweep.add_argument(
        "--max-rate",
        metavar="RATE",
        help="read budget shared by all segments: items/s (500) or capacity units/s (50cu); "
        "default: the profile's sweep_max_rate, else unlimited",
    )
    sweep.add_argument(
        "--restart",
        action="store_true",
        help="ignore the checkpoint of a sweep stopped half-way and scan from the start",
    )
    recover_cmd = commands.add_parser(
        "recover",
        help="finish the cleanup of runs that died on this machine",
        description=(
            "Replay the local journal (.harness/runs/<run>/) of a run that is over, including "
            "creates whose answer was lost, delete what still exists, and remove its lease. "
            "Without RUN_ID, every dead run that targeted the profile's environment. A run is "
            "over when no process on this machine holds its journal lock and its lease (with "
            "a lease_table) has lapsed or names a process gone from this machine; with RUN_ID, "
            "a run any of whose shards is alive is refused (exit 10) unless --wait. Exit 0 "
            "when everything is gone, 6 when something could not be deleted."
        ),
    )
    recover_cmd.add_argument("run_id", nargs="?", metavar="RUN_ID")
    recover_cmd.add_argument("--env", metavar="NAME", help="profile of the run's target")
    recover_cmd.add_argument(
        "--wait",
        type=options.seconds,
        metavar="SECONDS",
        help="with RUN_ID: wait up to this long for the run's live shards to end",
    )
    recover_cmd.add_argument(
        "--forget",
        action="store_true",
        help="with RUN_ID: settle the items recovery cannot delete (refused: no namespace; "
        "failed) once each is checked to be gone; items still there are kept and listed",
    )
    _allow_override(recover_cmd)
    _allow_override(sweep)
    _add_report_commands(commands)
    from harness.cli import history as history_commands

    history_commands.add_commands(commands, _allow_override)
    init = commands.add_parser(
        "init",
        help="scaffold a test project for your own service (never overwrites a file)",
        description=(
            "Write environments.toml (a commented profile and one declared kind), pytest.ini, "
            "conftest.py, fixtures/ and suites/smoke/ into DIR; then `harness doctor` tells "
            "you what to fill in."
        ),
    )
    init.add_argument("directory", nargs="?", default=".", metavar="DIR")
    env = commands.add_parser(
        "env",
        help="start and stop the local sandbox environment",
        description=ENV_DESCRIPTION,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    env_commands = env.add_subparsers(dest="env_command", metavar="ACTION", parser_class=_Parser)
    env_commands.add_parser(
        "up",
        help="start the sandbox (foreground; --detach: background) and print its exports",
        add_help=False,
    )
    env_commands.add_parser(
        "down", help="stop the sandbox `env up --detach` started; prints `unset …`"
    )
    return parser


def _allow_override(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--allow-env-override",
        action="store_true",
        help="let HARNESS_* variables change the base URL, AWS endpoint or identity of the "
        "profile named with --env (refused otherwise; or HARNESS_ALLOW_ENV_OVERRIDE=1)",
    )


def _add_report_commands(commands: argparse._SubParsersAction) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check an environment is ready for a run: one OK/FAIL row per check, with fixes",
        description=(
            "Check configuration (the adapters' kinds load), reachability, identity (as the "
            "profile's `identity` says), AWS credentials, every table the kinds declare, TTL "
            "where a setting asks for it, the lease table, and the events topic and processor "
            "queue (or, on Kafka, the topic and the service's consumer group). Reads only. "
            "The sandbox profile without HARNESS_BASE_URL starts a local sandbox for the "
            "check (--no-start: say how to point at a running one instead). Exit 1 on a FAIL, 7 "
            "when the service is unreachable or not the profile's, 8 when the profile cannot "
            "be used."
        ),
    )
    doctor.add_argument(
        "--env",
        metavar="NAME",
        help="profile (default: $HARNESS_ENV, the file's default, its only profile, or sandbox)",
    )
    doctor.add_argument("--harness-config", metavar="PATH", help="profiles file")
    doctor.add_argument(
        "--no-start", action="store_true", help="never start a local sandbox for the check"
    )
    _allow_override(doctor)
    residue = commands.add_parser(
        "residue",
        help="residue check for a whole run (e.g. after every CI shard finished)",
        description=(
            "Look for anything still carrying RUN_ID's namespace (every shard and worker), "
            "report it and remove it through the guarded delete path. Exit 6 if anything leaked; "
            "exit 10, touching nothing, while a shard of the run is alive (its journal lock "
            "on this machine, or its lease with a lease_table)."
        ),
    )
    residue.add_argument("run_id", metavar="RUN_ID")
    residue.add_argument("--env", metavar="NAME", help="profile of the run's target")
    residue.add_argument(
        "--wait",
        type=options.seconds,
        metavar="SECONDS",
        help="wait up to this long for the run's live shards to end (else: refused, exit 10)",
    )
    residue.add_argument(
        "--settle",
        type=options.seconds,
        default=3.0,
        metavar="SECONDS",
        help="let async deletes settle",
    )
    _allow_override(residue)
    residue.add_argument(
        "--alert", action="append", default=[], metavar="TARGET", help="webhook=URL on a leak"
    )
    residue.add_argument(
        "--scan-limit",
        type=int,
        default=None,
        metavar="N",
        help="scan a table for unrecorded leftovers only while it holds at most N items "
        "(default 1000; 0: never). What this machine's journals of the run recorded is "
        "always looked up by key.",
    )


def _residue(options: argparse.Namespace) -> int:
    from harness.cleanup.journal import replay_run
    from harness.cleanup.residue import DEFAULT_SCAN_LIMIT, check
    from harness.clients.aws import Aws
    from harness.namespace import RunId
    from harness.reporting import alerts
    from harness.safety.guards import Owner

    try:
        run_id = RunId.parse(options.run_id)
        targets = [alerts.parse_target(t) for t in options.alert]
    except ValueError as error:
        raise ConfigError(str(error)) from None
    scan_limit = DEFAULT_SCAN_LIMIT if options.scan_limit is None else options.scan_limit
    if scan_limit < 0:
        raise ConfigError(f"--scan-limit must be 0 or more, not {scan_limit}")
    profile, kinds = reach(options.env, options.allow_env_override)
    liveness = liveness_of(kinds)
    wait_until_over(liveness, str(run_id), options.wait, "residue")
    if liveness.lease_kind is None:
        print(
            f"harness: note: profile [{profile.name}] names no lease_table: only this "
            f"machine's shards of {run_id} could be checked to be over"
        )
    result = check(
        kinds,
        f"{run_id}-",
        Owner(run=run_id),
        recorded=replay_run(default_state_dir(), str(run_id)),
        scan_limit=scan_limit,
        settle=options.settle,
        remove=not profile.is_protected,
        progress=lambda m: print(f"harness: {m}", flush=True),
    )
    for item in result.leaked:
        print(f"leaked {item.summary}")
    for item, why in result.uncleaned:
        print(f"could not remove {item.summary}: {why}")
    verdict = "clean" if result.clean else f"{len(result.leaked)} leaked item(s)"
    print(f"residue check of run {run_id} on [{profile.name}]: {verdict}")
    report = {
        "run_id": str(run_id),
        "environment": profile.expected_environment,
        "exit_status": outcome.PASSED if result.clean else outcome.LEAKED,
        "outcome": outcome.word(outcome.PASSED if result.clean else outcome.LEAKED),
        "leaked": [{"kind": f.kind, **f.ids} for f in result.leaked],
    }
    aws = Aws(profile) if any(t.kind == "cloudwatch" for t in targets) else None
    _, warnings = alerts.send(targets, "failure", report, aws.cloudwatch if aws else None)
    for warning in warnings:
        print(f"harness: WARNING: {warning}", file=sys.stderr)
    return outcome.PASSED if result.clean else outcome.LEAKED


def build_pytest_args(options: argparse.Namespace, passthrough: list[str]) -> list[str]:
    # Option values are joined with "=": pytest takes a bare argument that looks like a path
    # (say /tmp/report.json) as a hint for its rootdir, and would then miss pytest.ini.
    # --harness: the plugin takes charge even in a project with no profiles file, where
    # plain pytest would leave it off (the bare sandbox profile then).
    args = [*UNUSED_PLUGINS, *QUIET_REWRITE, *SUITES[options.suite], "--harness"]
    args.append(f"--harness-report={options.report}")
    if options.env:
        args.append(f"--env={options.env}")
    if options.workers:
        args.append(f"-n={options.workers}")
    if options.seed is not None:
        args.append(f"--harness-seed={options.seed}")
    if options.keep_on_failure:
        args.append("--keep-on-failure")
    if options.shard:
        args.append(f"--harness-shard={options.shard}")
    if options.history:
        args.append(f"--history={options.history}")
    if options.no_history:
        args.append("--no-history")
    if options.retries is not None:
        args.append(f"--retries={options.retries}")
    if options.residue_settle is not None:
        args.append(f"--residue-settle={options.residue_settle}")
    if options.events_drain is not None:
        args.append(f"--events-drain={options.events_drain}")
    if options.allow_env_override:
        args.append("--allow-env-override")
    # No paths: pytest runs the project's configured testpaths (pytest.ini), never a suite
    # that happens to be installed.
    return args + passthrough


def passthrough_seed(passthrough: list[str]) -> int | None:
    """``--harness-seed`` given to pytest through ``harness run`` (the plugin's spelling)."""
    for index, arg in enumerate(passthrough):
        value = None
        if arg.startswith("--harness-seed="):
            value = arg.split("=", 1)[1]
        elif arg == "--harness-seed" and index + 1 < len(passthrough):
            value = passthrough[index + 1]
        if value is not None:
            try:
                return options.seed(value)
            except argparse.ArgumentTypeError as error:
                raise UsageError(f"harness run: argument --harness-seed: {error}") from None
    return None


def _sweep(options: argparse.Namespace) -> int:
    from harness.cleanup import sweeper
    from harness.cleanup.liveness import Liveness
    from harness.cleanup.sweeper import SweepRefused
    from harness.kinds.dynamo import parse_rate
    from harness.kinds.lease import LeaseKind

    try:
        segments = int(options.segments)
    except ValueError:
        segments = 0
    if not 1 <= segments <= MAX_SEGMENTS:
        raise ConfigError(
            f"--segments must be a whole number from 1 to {MAX_SEGMENTS}, not {options.segments!r}"
        )
    profile, kinds = reach(options.env, options.allow_env_override)
    rate_text = options.max_rate or profile.sweep_max_rate
    try:
        max_rate = parse_rate(rate_text) if rate_text else None
    except ValueError as error:
        where = "--max-rate" if options.max_rate else f"sweep_max_rate of [{profile.name}]"
        raise ConfigError(f"{where}: {error}") from None
    if profile.is_protected:
        raise SweepRefused(
            f"profile [{profile.name}] is protected: sweeping is refused. If it really is a "
            f"test environment, set protected = false in its profile."
        )
    older_than = options.older_than if options.older_than is not None else profile.test_data_ttl
    lease_kind = kinds.get("lease")
    assert lease_kind is None or isinstance(lease_kind, LeaseKind)
    alive = Liveness(lease_kind, default_state_dir()).alive_runs()
    control = sweeper.scan_control(
        segments=segments,
        max_rate=max_rate,
        # A dry run reads and writes no checkpoint: only a sweep that deletes resumes.
        state_dir=default_state_dir() if options.yes else None,
        profile=profile.name,
        restart=options.restart,
        progress=lambda m: print(f"harness: {m}", file=sys.stderr, flush=True),
    )
    if control.checkpoint is not None and control.checkpoint.exists():
        print(
            f"harness: resuming the sweep stopped half-way (checkpoint in "
            f"{control.checkpoint.directory}); --restart to scan from the start",
            file=sys.stderr,
        )
    started = time.perf_counter()
    sweep = sweeper.plan(kinds, older_than=older_than, alive=alive, scan=control)
    scan_s = time.perf_counter() - started
    if control.scanned:
        print(
            f"scanned {control.scanned} item(s) in {control.calls} call(s), {scan_s:.1f}s"
            + (f", {segments} segments" if segments > 1 else "")
            + (f", budget {max_rate[0]:g} {max_rate[1]}/s" if max_rate else "")
        )
    if lease_kind is None:
        print(
            f"note: profile [{profile.name}] names no lease_table: runs on other machines are "
            f"told alive only by their age (--older-than)"
        )
    print(f"sweep of [{profile.name}], runs older than {older_than:g}s:")
    print(sweeper.render(sweep, dry_run=not options.yes))
    if not options.yes:
        print("dry run: nothing deleted. Re-run with --yes to delete.")
        return 0
    if sweep.item_count > options.max:
        raise SweepRefused(
            f"{sweep.item_count} items exceed the cap of {options.max}: review the plan above, "
            f"then re-run with --max {sweep.item_count}"
        )
    started = time.perf_counter()
    deleted = sweeper.execute(kinds, sweep, progress=lambda m: print(f"harness: {m}"))
    seconds = time.perf_counter() - started
    total = sum(deleted.values())
    rate = total / seconds if seconds > 0 else 0.0
    print(f"deleted {total} item(s) in {seconds:.2f}s ({rate:.0f} items/s): {dict(deleted)}")
    if control.checkpoint is not None:
        control.checkpoint.clear()  # done: the next sweep scans from the start
    return 0


def _recover(options: argparse.Namespace) -> int:
    from harness.cleanup import recovery
    from harness.cleanup.liveness import run_folders

    profile, kinds = reach(options.env, options.allow_env_override)
    liveness = liveness_of(kinds)
    state_dir = default_state_dir()
    if options.forget and not options.run_id:
        raise UsageError("harness recover: --forget needs the RUN_ID whose journal to forget")
    if options.run_id:
        try:
            RunId.parse(options.run_id)
        except ValueError as error:
            raise ConfigError(f"harness recover: {error}") from None
        folders = run_folders(state_dir, options.run_id)
        if not folders:
            raise ConfigError(f"no journal of run {options.run_id} under {state_dir}/runs")
        for folder in folders:
            target = folder.owner.get("base_url")
            if target and target != profile.base_url:
                raise ConfigError(
                    f"run {folder.name} targeted {target}, but profile [{profile.name}] is "
                    f"{profile.base_url}: pass --env for that target"
                )
        wait_until_over(liveness, options.run_id, options.wait, "recover")
        claims = liveness.dead_folders(run_id=options.run_id)
    else:
        claims = liveness.dead_folders(base_url=profile.base_url)
    if options.forget:
        return _forget(claims, kinds)
    failed = seen = 0
    for claim in claims:
        seen += 1
        try:
            unsettled = claim.folder.unsettled()
            result = recovery.recover(claim, kinds)
        finally:
            claim.release()
        if not unsettled:
            print(f"run {claim.folder.name}: nothing was left; its journal and lease removed")
            continue
        failed += len(result.failed + result.refused)
        print(
            f"run {claim.folder.name}: {len(result.deleted)} deleted, {len(result.absent)} "
            f"already gone, {len(result.belonging)} written by the service for them removed "
            f"too, {len(result.failed)} failed, {len(result.refused)} refused"
        )
        for resource in result.failed + result.refused:
            print(f"  {resource.describe()}: {resource.error}")
        if result.refused:
            print(
                f"  refused items carry no harness namespace: remove them by hand if they are "
                f"yours, then `harness recover --forget {claim.folder.run_id}`"
            )
    if not seen:
        print(f"no dead run with a journal here targeted {profile.base_url}")
    return outcome.LEAKED if failed else outcome.PASSED


def _forget(claims: Iterator[Claim], kinds: dict[str, Kind]) -> int:
    from harness.cleanup import recovery

    present = 0
    for claim in claims:
        try:
            done = recovery.forget(claim, kinds)
        finally:
            claim.release()
        present += len(done.present)
        for resource in done.gone:
            print(f"forgot {resource.describe()}: it is gone")
        for resource in done.unchecked:
            print(f"forgot {resource.describe()}: kind {resource.kind!r} unknown here, not checked")
        for resource in done.present:
            print(f"kept {resource.describe()}: it is still there (delete it, then forget again)")
        verdict = "still holds items" if done.present else "forgotten, its lease removed"
        print(f"run {claim.folder.name}: {verdict}")
    return outcome.LEAKED if present else outcome.PASSED


def _run(options: argparse.Namespace, passthrough: list[str]) -> int:
    """pytest with the harness; a sandbox the profile needs is started first, in parallel
    with pytest's own start-up, and always stopped (the plugin would start one otherwise)."""
    _shard_environment(options)
    given = passthrough_seed(passthrough)
    if given is not None and options.seed is not None and given != options.seed:
        raise UsageError(
            f"harness run: --seed {options.seed} and --harness-seed {given} disagree: give the "
            f"seed once, with --seed"
        )
    report = Path(os.path.expanduser(options.report))
    named = {"--report": report, **_named_outputs(passthrough)}
    try:
        # before anything starts: a sandbox, a lease, a test
        outputs.prepare(named, os.environ.get("HARNESS_RUN_ID", ""))
    except (outputs.OutputError, OSError) as error:
        raise UsageError(f"harness run: {error}") from None
    STOP.install(abandon=lambda: say("\nharness: stopped before the run started"))
    try:
        return _run_pytest(options, passthrough)
    except KeyboardInterrupt:
        _report_failed_start(
            report,
            outcome.INTERRUPTED,
            f"interrupted ({STOP.signal_name or 'KeyboardInterrupt'}) before the tests "
            f"started: nothing of the run was created",
        )
        raise
    except Exception as error:  # the CLI's own line and status follow in main()
        text = " ".join(str(error).split()) or type(error).__name__
        _report_failed_start(report, outcome.INTERNAL_ERROR, f"{type(error).__name__}: {text}")
        raise


def _shard_environment(options: argparse.Namespace) -> None:
    """``--shard I/N``: checked now (one line, exit 8), and the run's namespace and journal
    folder are the shard's (``HARNESS_SHARD=I``, unless it already says the same)."""
    if not options.shard:
        return
    from harness.history.shards import parse

    try:
        index, _ = parse(options.shard)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"harness run: argument --shard: {error}") from None
    given = os.environ.get("HARNESS_SHARD")
    if given and given.strip() != str(index):
        raise UsageError(
            f"harness run: --shard {options.shard} but HARNESS_SHARD={given}: give the shard "
            f"once (unset HARNESS_SHARD, or make them agree)"
        )
    os.environ["HARNESS_SHARD"] = str(index)


def _report_failed_start(report: Path, status: int, message: str) -> None:
    """The report of a `harness run` that ended before pytest took over; a report that cannot
    be written (a full disk) is said, and keeps saying 'incomplete'."""
    try:
        outputs.write_failed_start(report, status, message, os.environ.get("HARNESS_RUN_ID", ""))
    except OSError as error:
        say(
            f"harness: could not write the JSON report {report}: {error.strerror or error} (it "
            f"still says 'incomplete'; exit {status} is the run's verdict)"
        )


def _named_outputs(passthrough: list[str]) -> dict[str, Path]:
    """The pytest output options given after `--` (--junitxml, --html, --summary), so they
    are checked before a sandbox starts too (the plugin checks them again)."""
    spellings = {"--junitxml": "--junitxml", "--junit-xml": "--junitxml", "--html": "--html"}
    spellings["--summary"] = "--summary"
    found: dict[str, Path] = {}
    for index, arg in enumerate(passthrough):
        name, eq, value = arg.partition("=")
        if name in spellings:
            if not eq:
                value = passthrough[index + 1] if index + 1 < len(passthrough) else ""
            if value:
                found[spellings[name]] = Path(os.path.expanduser(value))
    return found


def _run_pytest(options: argparse.Namespace, passthrough: list[str]) -> int:
    pending: PendingSandbox | None = None
    sandbox: LocalSandbox | None = None
    if not os.environ.get("HARNESS_BASE_URL"):
        try:
            profile = load_profile(options.env)
            if profile.needs_local_sandbox:
                from harness.run.lifecycle import sandbox_arguments

                run_id = os.environ.setdefault("HARNESS_RUN_ID", str(RunId.generate()))
                log = default_state_dir() / "sandbox" / f"{run_id}.log"
                sys.stderr.write("harness: starting the local sandbox…\n")
                pending = LocalSandbox.spawn(log, sandbox_arguments(profile))
                faultpoints.reach("sandbox-start")
        except ConfigError:
            pass  # the plugin reports it the same way as for plain pytest
    try:
        import pytest

        if pending is not None:
            from harness.cli.env import relay

            sandbox = pending.wait_ready(progress=relay)  # its start's steps, as they happen
            mark_started_sandbox(sandbox.exports, os.environ)
        return outcome.from_pytest(int(pytest.main(build_pytest_args(options, passthrough))))
    finally:
        if sandbox is not None:
            sandbox.stop()
        elif pending is not None:
            pending.stop()


def main(argv: list[str] | None = None) -> int:
    """The command line; every failure is one line on stderr and a status of the table in
    :mod:`harness.run.outcome` — never a traceback (``HARNESS_DEBUG=1`` prints one before
    that line; the status stays the same)."""
    streams.guard()  # `harness run | head` must not end a run before its cleanup
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:
        return _fail(str(error), outcome.CONFIG)
    except (TargetError, SandboxError) as error:
        return _fail(f"harness: {error}", outcome.UNREACHABLE)
    except RunStillAlive as error:
        return _fail(str(error), outcome.RUN_IN_USE)
    except ConfigError as error:
        return _fail(f"harness: {error}", outcome.CONFIG)
    except KeyboardInterrupt:
        return _fail("harness: interrupted", outcome.INTERRUPTED)
    except Exception as error:
        if os.environ.get("HARNESS_DEBUG"):  # the traceback too, the status unchanged
            import traceback

            traceback.print_exc()
        return _unexpected(error)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(" ".join(message.split("\n")[:1]) + "\n")
    return status


def _unexpected(error: Exception) -> int:
    """AWS or network trouble the commands did not foresee is the target's (7); anything else
    is a bug (3). One line either way."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
        from requests import RequestException
    except ImportError:  # pragma: no cover - both are dependencies
        BotoCoreError = ClientError = RequestException = ()  # type: ignore[misc,assignment]
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, BotoCoreError | ClientError | RequestException):
        return _fail(
            f"harness: the target failed: {type(error).__name__}: {text} (check it with "
            f"`harness doctor`)",
            outcome.UNREACHABLE,
        )
    return _fail(
        f"harness: internal error: {type(error).__name__}: {text} (HARNESS_DEBUG=1 shows the "
        f"traceback; please report it)",
        outcome.INTERNAL_ERROR,
    )


def _main(argv: list[str]) -> int:
    if argv[:2] == ["env", "up"]:
        from harness.cli import env as env_command

        return env_command.up(argv[2:])
    explicit: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, explicit = argv[:index], argv[index + 1 :]
    parser = _parser()
    options, unknown = parser.parse_known_args(argv)
    if options.command == "run":
        return _run(options, unknown + explicit)
    if unknown or explicit:
        raise UsageError(
            f"harness {options.command or ''}: unrecognized arguments: "
            f"{' '.join(unknown + explicit)} (see `harness {options.command or ''} --help`)"
        )
    if options.command == "init":
        from harness.cli import init as init_command

        try:
            return init_command.run(options.directory)
        except OSError as error:
            raise ConfigError(
                f"cannot scaffold a project in {options.directory!r}: "
                f"{error.strerror or error}; name a directory you can write (or a new one)"
            ) from None
    if options.command in ("history", "quarantine", "merge"):
        from harness.cli import history as history_commands

        command = {
            "history": history_commands.history_command,
            "quarantine": history_commands.quarantine_command,
            "merge": history_commands.merge_command,
        }[options.command]
        return command(options)
    if options.command == "doctor":
        from harness.cli import doctor

        return doctor.run(
            options.env, options.harness_config, not options.no_start, options.allow_env_override
        )
    from harness.cleanup.ledger import OwnershipError
    from harness.cleanup.sweeper import SweepRefused

    try:
        if options.command == "residue":
            return _residue(options)
        if options.command == "sweep":
            return _sweep(options)
        if options.command == "recover":
            return _recover(options)
    except (SweepRefused, OwnershipError) as error:
        raise ConfigError(str(error)) from None
    if options.command == "env" and options.env_command == "down":
        from harness.cli import env as env_command

        return env_command.down()
    if options.command == "env":
        parser.parse_args(["env", "--help"])
    parser.print_help()
    raise UsageError("harness: name a command, e.g. `harness run` (see `harness --help`)")


ENV_DESCRIPTION = """The local sandbox (the reference service on the AWS emulator).

  harness env up                    foreground: prints `export HARNESS_…` lines, then serves
                                    until Ctrl-C
  eval "$(harness env up --detach)" background: returns once it is ready, with its
                                    variables in this shell
  eval "$(harness env down)"        stop it (and unset the variables)

One detached sandbox per directory, recorded in .harness/sandbox/detached.json
($HARNESS_STATE_DIR): run `env down` from the same directory. A second `env up --detach` there
prints the running one's exports when it asks for the same options (say, the same --bus), and
otherwise refuses (exit 8): run `env down` first. Options: `harness env up --help`.
"""


if __name__ == "__main__":
    sys.exit(main())
