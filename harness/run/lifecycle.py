"""A run's lifecycle, without pytest: start, what each worker owns, and the end-of-run sequence.

Owns the one place that resolves the profile (starting the local sandbox when the profile
asks for one), proves the target (preflight), takes the run's lease and recovers dead local
runs before the first test; and, after the last test, each worker's final cleanup and the
controller's sequence: release the lease, let the service's consumers drain, run the residue
check (by key over what the journals recorded), decide the verdict and forget a clean run's
journal. The pytest plugin (:mod:`harness.pytest_plugin.plugin`) only calls in here; so could
any other runner. It never prints: callers pass a ``progress`` callback.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from requests import RequestException

from harness import faultpoints
from harness.cleanup.journal import SETTLED, Resource, default_state_dir, replay, run_dir
from harness.cleanup.lease import Lease
from harness.cleanup.ledger import OwnershipError
from harness.cleanup.liveness import HeldLock, Liveness, RunInUse, hold
from harness.cleanup.recovery import recover, write_owner
from harness.cleanup.residue import DEFAULT_SCAN_LIMIT, ResidueResult, kept_matcher
from harness.cleanup.residue import check as residue_check
from harness.clients.aws import Aws
from harness.clients.trace import TestTrace
from harness.config import (
    ConfigError,
    Profile,
    TargetError,
    describe_target,
    provenance,
    refuse_env_overrides,
)
from harness.events.quiescence import wait_for_quiescence
from harness.kinds.base import Kind
from harness.kinds.lease import LeaseKind
from harness.kinds.registry import load_kinds, load_profile
from harness.namespace import Namespace, RunId, shard_part, worker_part
from harness.reporting import latency
from harness.reporting.report import RunReport
from harness.run import outcome
from harness.run.interrupts import STOP, Cut
from harness.run.local_sandbox import LocalSandbox, SandboxError, mark_started_sandbox
from harness.run.session import HarnessSession
from harness.safety import preflight
from harness.safety.guards import Owner

Progress = Callable[[str], None]


class StartError(Exception):
    """The run cannot start; the message names the fix, ``status`` is the exit status
    (:mod:`harness.run.outcome`: 7 the target, 8 the configuration)."""

    def __init__(
        self, message: str, status: int = outcome.CONFIG, target: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        #: The target's provenance, when the profile got that far (for the report).
        self.target = target or {}


@dataclass(frozen=True)
class TargetOptions:
    """What the user said about the target (CLI or pytest options)."""

    env: str | None = None
    config: str | None = None
    base_url: str | None = None
    #: The user confirmed that HARNESS_* variables may change a named profile's target.
    allow_env_override: bool = False
    #: Where the profiles file is looked for (upward) when none is named: pytest's rootdir;
    #: None, the current folder. Its folder is the project root, where ``.harness`` lives.
    root: str | None = None


def resolve_profile(
    options: TargetOptions, environ: Mapping[str, str] | None = None, *, check: bool = False
) -> Profile:
    """The profile; with ``check``, refused when stale variables redirect a named one."""
    profile = load_profile(
        options.env,
        options.config,
        {"base_url": options.base_url},
        environ=environ,
        start=options.root,
    )
    if check:
        refuse_env_overrides(profile, options.allow_env_override, environ)
    return profile


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
    #: Item count of each table, from preflight's DescribeTable (DynamoDB refreshes it about
    #: every six hours): the residue check's size rule needs no second look.
    table_sizes: dict[str, int] = field(default_factory=dict)
    worker_stats: list[dict[str, Any]] = field(default_factory=list)
    #: Ctrl-C or SIGTERM ended the tests (exit 130).
    interrupted: bool = False
    #: Test files that could not be collected (exit 9).
    collection_errors: int = 0
    #: Teardowns failed only because deleting the test's data failed (exit 6, not 1).
    cleanup_teardown_failures: int = 0
    #: This process's lock on its journal folder (:mod:`harness.cleanup.liveness`): held from
    #: before its first journal line until its cleanup is over.
    lock: HeldLock | None = None
    #: The workers' figures were folded into the report (once: the end sequence, or an
    #: abandoned one).
    stats_added: bool = False
    #: The trace of the test running in this process (begun at each test's setup).
    trace: TestTrace = field(default_factory=TestTrace)

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def harness_session(self) -> HarnessSession:
        if self.session is None:
            namespace = Namespace(run=self.run_id, worker=self.worker)
            self.session = HarnessSession(
                self.profile,
                namespace,
                self.seed,
                self.state_dir,
                shard=self.shard,
                trace=self.trace,
            )
            if self.aws is not None:
                self.session.aws = self.aws
        return self.session


def sandbox_arguments(profile: Profile) -> list[str]:
    """The local sandbox's options the profile asks for (``--bus kafka``; a PostgreSQL server
    for its SQL kinds, their URL exported under each kind's ``url_variable``)."""
    arguments = ["--bus", profile.events_bus] if profile.events_bus != "sns" else []
    for spec in profile.kinds.values():
        if spec.get("type") == "sql" and spec.get("url_variable"):
            arguments += ["--postgres-url-variable", str(spec["url_variable"])]
    return arguments


def run_id_from_environment() -> RunId:
    try:
        if os.environ.get("HARNESS_RUN_ID"):
            return RunId.parse(os.environ["HARNESS_RUN_ID"])
    except ValueError as error:
        raise StartError(f"HARNESS_RUN_ID: {error}") from None
    return RunId.generate()


def start_controller(
    options: TargetOptions, seed: int | None, progress: Progress = lambda _: None
) -> RunState:
    """Resolve, start the sandbox if asked, prove the target, then — before anything is
    written for the run — take its journal folder's lock and its lease, and only then write
    its owner file and recover dead runs. Every failure is a :class:`StartError`; a failure
    or an interrupt (KeyboardInterrupt, re-raised) undoes what was done: the lease released,
    the lock dropped, a folder this call made removed, a sandbox it started stopped."""
    run_id = run_id_from_environment()
    if seed is None:
        try:
            seed = int(os.environ.get("HARNESS_SEED") or random.SystemRandom().randrange(2**32))
        except ValueError:
            raise StartError(
                f"HARNESS_SEED={os.environ['HARNESS_SEED']!r} is not a number: unset it, or "
                f"give the seed with --seed N"
            ) from None
    undo = _Undo()
    try:
        return _start_controller(options, run_id, seed, progress, undo)
    except BaseException:
        undo.run()
        raise


class _Undo:
    """What :func:`start_controller` did so far, undone in reverse when it cannot finish."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self.steps.append(step)

    def run(self) -> None:
        for step in reversed(self.steps):
            # undoing is best effort: what is left is recovered later
            with contextlib.suppress(Exception):
                step()
        self.steps.clear()


def _start_controller(
    options: TargetOptions, run_id: RunId, seed: int, progress: Progress, undo: _Undo
) -> RunState:
    profile: Profile | None = None
    sandbox: LocalSandbox | None = None
    try:
        profile = resolve_profile(options, check=True)
        if profile.needs_local_sandbox:
            progress("starting the local sandbox…")
            log = default_state_dir(profile.project_root) / "sandbox" / f"{run_id}.log"
            pending = LocalSandbox.spawn(log, sandbox_arguments(profile))
            undo.add(pending.stop)
            faultpoints.reach("sandbox-start")
            sandbox = pending.wait_ready(progress=lambda line: progress(f"  {line}"))
            mark_started_sandbox(sandbox.exports, os.environ)
            profile = resolve_profile(options, check=True)
        shard = shard_part(os.environ.get("HARNESS_SHARD"))
        target = provenance(profile)
        faultpoints.reach("preflight")
        identity = preflight.check_service(profile, warn=progress)
        version = preflight.service_version(profile, identity, warn=progress)
        aws = Aws(profile)
        kinds = load_kinds(profile, aws)
        table_sizes = preflight.check_aws(profile, aws, kinds)
    except (ConfigError, SandboxError, ValueError) as error:
        message = str(error)
        status = outcome.CONFIG
        known = provenance(profile) if profile is not None else {}
        if isinstance(error, TargetError | SandboxError):
            status = outcome.UNREACHABLE
            if known and isinstance(error, TargetError):
                message += f" ({describe_target(known)})"
        raise StartError(message, status, known) from None
    except (BotoCoreError, ClientError, RequestException) as error:
        # the target went away while preflight asked it something (a dropped connection)
        known = provenance(profile) if profile is not None else {}
        text = " ".join(str(error).split()) or type(error).__name__
        raise StartError(
            f"the target failed during preflight: {type(error).__name__}: {text} (check it "
            f"with `harness doctor`)",
            outcome.UNREACHABLE,
            known,
        ) from None
    progress(describe_target(target))
    state_dir = default_state_dir(profile.project_root)
    folder = run_dir(state_dir, str(run_id), shard)
    worker = worker_part(None, os.environ.get("HARNESS_SHARD"))
    lock = _take_run_lock(folder, worker, str(run_id), target, undo)
    faultpoints.reach("lock")
    state = RunState(
        profile=profile,
        run_id=run_id,
        seed=seed,
        worker=worker,
        state_dir=state_dir,
        report=RunReport(
            str(run_id), profile.expected_environment, profile.name, profile.base_url, seed
        ),
        shard=shard,
        aws=aws,
        sandbox=sandbox,
        table_sizes=table_sizes,
        lock=lock,
    )
    state.report.identity = identity
    state.report.service_version = version
    state.report.target = target
    state.report.service_logs["log_groups"] = list(profile.log_groups)
    # a protected target gets no writes at all, not even a lease
    if not profile.is_protected and profile.lease_table:
        # clients of its own: the refresh thread must not share boto3 resources (not
        # thread-safe); acquire() writes once here, so they are built in this thread
        lease = Lease(LeaseKind(profile, aws.sibling()), str(run_id), shard)
        try:
            lease.acquire()
        except OwnershipError:
            raise StartError(
                f"run id {run_id}{f' shard {shard}' if shard else ''} is in use: another "
                f"process holds its lease ({lease.marker}); give this run its own "
                f"HARNESS_RUN_ID (or HARNESS_SHARD)",
                outcome.RUN_IN_USE,
                target,
            ) from None
        except Exception as error:
            raise StartError(
                f"could not take the run's lease: {type(error).__name__}: {error}",
                outcome.UNREACHABLE,
                target,
            ) from None
        undo.add(lease.release)
        state.lease = lease
        faultpoints.reach("lease")
    try:
        write_owner(state_dir, str(run_id), profile.name, profile.base_url, shard)
    except OSError as error:
        raise StartError(
            f"cannot write the run's journal folder {folder}: {error.strerror or error}; free "
            f"the disk, or set HARNESS_STATE_DIR to a folder that can be written",
            outcome.CONFIG,
            target,
        ) from None
    if not profile.is_protected:
        faultpoints.reach("recovery")
        try:
            recover_dead_runs(state_dir, kinds, profile.base_url, progress)
        except Exception as error:
            raise StartError(
                f"could not recover dead runs: {type(error).__name__}: {error}",
                outcome.UNREACHABLE,
                target,
            ) from None
    os.environ["HARNESS_RUN_ID"] = str(run_id)
    os.environ["HARNESS_SEED"] = str(seed)
    undo.steps.clear()  # started: from here on the run's own end sequence owns all of it
    return state


def _take_run_lock(
    folder: Path, worker: str, run_id: str, target: dict[str, Any], undo: _Undo
) -> HeldLock:
    """This run's journal-folder lock — the first thing it writes; a folder it makes here is
    removed again if the run cannot start."""
    made = not folder.exists()
    if made:
        undo.add(lambda: shutil.rmtree(folder, ignore_errors=True))
    try:
        lock = hold(folder, worker)
    except RunInUse:
        raise StartError(
            f"run id {run_id} is in use: a live process on this machine holds "
            f"{folder / worker}.lock (the same HARNESS_RUN_ID and HARNESS_SHARD twice?); give "
            f"this run its own HARNESS_RUN_ID, or wait for the other to end",
            outcome.RUN_IN_USE,
            target,
        ) from None
    except OSError as error:
        raise StartError(
            f"cannot write the run's journal folder {folder}: {error.strerror or error}; "
            f"make it writable or set HARNESS_STATE_DIR",
            outcome.CONFIG,
            target,
        ) from None
    undo.add(lock.release)
    return lock


def recover_dead_runs(
    state_dir: Path, kinds: dict[str, Kind], base_url: str, progress: Progress
) -> None:
    """Finish the cleanup of this target's dead runs on this machine (each claimed from the
    liveness authority first), and forget folders whose journals are all settled."""
    lease = kinds.get("lease")
    liveness = Liveness(lease if isinstance(lease, LeaseKind) else None, state_dir)
    for claim in liveness.dead_folders(base_url=base_url):
        try:
            unsettled = claim.folder.unsettled()
            result = recover(claim, kinds)  # settled: only its lease, then the folder, go
        finally:
            claim.release()
        if unsettled:
            progress(
                f"recovered dead run {claim.folder.name}: {len(result.deleted)} deleted, "
                f"{len(result.absent)} already gone, "
                f"{len(result.belonging)} written by the service for them, "
                f"{len(result.failed + result.refused)} failed"
            )


def start_worker(options: TargetOptions, run_id: str, seed: int, xdist_worker: str) -> RunState:
    try:
        profile = resolve_profile(options)
    except ConfigError as error:
        raise StartError(str(error)) from None
    rid = RunId.parse(run_id)
    shard = shard_part(os.environ.get("HARNESS_SHARD"))
    worker = worker_part(xdist_worker, os.environ.get("HARNESS_SHARD"))
    state_dir = default_state_dir(profile.project_root)
    try:
        lock = hold(run_dir(state_dir, run_id, shard), worker)
    except (RunInUse, OSError) as error:
        raise StartError(f"worker {worker} cannot lock its journal: {error}") from None
    return RunState(
        profile=profile,
        run_id=rid,
        seed=seed,
        worker=worker,
        state_dir=state_dir,
        report=RunReport(str(rid), profile.expected_environment, profile.name, "", seed),
        shard=shard,
        lock=lock,
    )


def finish_worker(state: RunState) -> dict[str, Any]:
    """Clean whatever this worker's ledger still holds (interrupts, session-scoped data);
    the figures go to the controller."""
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
    if harness is not None and "api" in harness.__dict__:
        stats["latency"] = latency.collect(harness.api.latencies)
    if harness is not None and "service_logs" in harness.__dict__:
        stats["service_logs"] = harness.service_logs.figures()
    if harness is None or "ledger" not in harness.__dict__:
        return stats
    faultpoints.reach("worker-finish")
    leftover = harness.ledger.cleanup()
    failures = [f"{r.describe()}: {r.error}" for r in leftover.failed + leftover.refused]
    ledger_stats = harness.ledger.stats
    kinds = harness.kinds
    stats.update(
        created=ledger_stats.created,
        cleaned=ledger_stats.cleaned,
        failed=ledger_stats.failed,
        kept=ledger_stats.kept,
        failures=[harness.redactor.text(f) for f in failures],
        kept_ids=[
            {**r.ids, "_marker": kinds[r.kind].marker(r.ids) if r.kind in kinds else None}
            for r in harness.ledger.kept
        ],
        event_latency=harness.event_latency.samples(),
        belonging=harness.related_cleaned,
        event_seen=harness.event_seen.samples(),
        errors=list(harness.ledger.journal_errors),
    )
    if harness.ledger.broken:  # the journal cannot be trusted: send what memory holds
        stats["recorded"] = [
            {"seq": r.seq, "kind": r.kind, "ids": r.ids, "state": r.state, "worker": state.worker}
            for r in harness.ledger.recorded
        ]
    harness.close()
    return stats


def unreported_worker_stats(state: RunState) -> list[dict[str, Any]]:
    """Figures for every worker of this run whose own figures never arrived (a worker
    stopped by Ctrl-C under xdist is torn down before it can send them), read from its
    journal — the on-disk truth of what it created and what its cleanup settled."""
    reported = {str(stats.get("worker")) for stats in state.worker_stats}
    directory = run_dir(state.state_dir, str(state.run_id), state.shard)
    found = []
    for path in sorted(directory.glob("*.jsonl")):
        if path.stem in reported:
            continue
        resources = replay(path)
        by_state = Counter(r.state for r in resources)
        found.append(
            {
                "worker": path.stem,
                "created": len(resources),
                "cleaned": by_state["deleted"],
                "failed": by_state["failed"],
                "kept": by_state["kept"],
                "failures": [
                    f"{r.describe()}: {r.error}" for r in resources if r.state == "failed"
                ],
                "kept_ids": [{**r.ids, "_marker": None} for r in resources if r.state == "kept"],
                "from_journal": True,
            }
        )
    return found


@dataclass(frozen=True)
class FinishOptions:
    settle: float = 3.0
    drain: float = 15.0
    scan_limit: int = DEFAULT_SCAN_LIMIT


def finish_run(state: RunState, options: FinishOptions, progress: Progress) -> bool:
    """Controller, after the last worker: release the lease, drain, residue check. True when
    the run is clean (nothing leaked, no cleanup failure); a clean run's journal is removed."""
    if state.lease is not None:
        try:
            state.lease.release()
        except Exception as error:  # the residue check below finds and reports it
            progress(f"could not release the run's lease: {type(error).__name__}: {error}")
        state.lease = None
    prefix = f"{state.run_id}-{state.shard}"
    progress(f"residue check for {prefix}…")
    aws = state.aws or Aws(state.profile)
    kept_ids = [ids for stats in state.worker_stats for ids in stats.get("kept_ids", [])]
    try:
        kinds = load_kinds(state.profile, aws)
        try:
            with STOP.cuttable():  # a stop during the end sequence cuts this wait short
                faultpoints.reach("drain")
                _wait_for_events_to_drain(state, aws, options.drain, progress)
        except Cut:
            progress("stop requested: not waiting for the service's consumers to drain")
        faultpoints.reach("residue")
        state.residue = residue_check(
            kinds,
            prefix,
            Owner(run=state.run_id),
            recorded=recorded_resources(state),
            settle=0.0 if STOP.cut else options.settle,
            is_kept=kept_matcher(kept_ids),
            remove=not state.profile.is_protected,
            scan_limit=options.scan_limit,
            progress=progress,
            sizes=state.table_sizes,
        )
    except Exception as error:  # the environment went away: report, do not crash
        progress(f"residue check could not run: {type(error).__name__}: {error}")
        state.report.cleanup_failures.append(f"residue check failed: {error}")
    if state.residue is not None:
        state.report.leaked = [{"kind": f.kind, **f.ids} for f in state.residue.leaked]
        state.report.unfinished = [{"kind": f.kind, **f.ids} for f in state.residue.unfinished]
        state.report.resources["belonging"] += len(state.residue.belonging)
    clean = state.residue is not None and state.residue.clean and not state.report.cleanup_failures
    if (nothing_left(state) and not kept_ids) or runs_own_sandbox(state):
        shutil.rmtree(run_dir(state.state_dir, str(state.run_id), state.shard), ignore_errors=True)
    return clean


def nothing_left(state: RunState) -> bool:
    """The residue check looked up everything the journals recorded and nothing of the run is
    there any more: it found nothing, or removed all it found (never on a protected target,
    which it only reads). The journal has nothing left to tell recovery."""
    residue = state.residue
    if residue is None or residue.kept:
        return False
    return residue.clean or (not state.profile.is_protected and not residue.uncleaned)


def runs_own_sandbox(state: RunState) -> bool:
    """The run started the sandbox it targets: the sandbox, and all the run put in it, stop
    with the run — there is nothing anywhere for a journal to recover."""
    return state.profile.sources.get("base_url") == "sandbox"


def recorded_resources(state: RunState) -> list[Resource]:
    """Every resource this run's workers on this machine journaled (their files are local),
    and what a worker whose journal could not be written reported from memory."""
    directory = run_dir(state.state_dir, str(state.run_id), state.shard)
    found = {
        (r.worker, r.seq): r for path in sorted(directory.glob("*.jsonl")) for r in replay(path)
    }
    for stats in state.worker_stats:
        for entry in stats.get("recorded", []):
            found[(entry["worker"], entry["seq"])] = Resource(
                seq=entry["seq"],
                kind=entry["kind"],
                ids=dict(entry["ids"]),
                state=entry["state"],
                worker=entry["worker"],
            )
    return list(found.values())


def left_behind(state: RunState) -> list[dict[str, Any]]:
    """What this run leaves in place if it stops now: its recorded resources not yet settled
    (journals, and memory where a journal failed) and its lease. `harness recover` removes
    them once the run is over."""
    left: list[dict[str, Any]] = [
        {"kind": r.kind, **r.ids} for r in recorded_resources(state) if r.state not in SETTLED
    ]
    if state.lease is not None:
        left.append({"kind": "lease", "marker": state.lease.marker})
    return left


def _wait_for_events_to_drain(
    state: RunState, aws: Aws, timeout: float, progress: Progress
) -> None:
    """Asynchronous residue: let the service's consumer finish what the run set off, so a
    record it writes late is caught by the residue check instead of missed. On Kafka: the
    service's consumer group at lag 0 on the topic's partitions, twice in a row."""
    if state.profile.events_bus == "kafka":
        _wait_for_consumer_group(state.profile, timeout, progress)
        return
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


def _wait_for_consumer_group(profile: Profile, timeout: float, progress: Progress) -> None:
    group, topic = profile.kafka_consumer_group, profile.kafka_topic
    if not group or not topic or timeout <= 0:
        return
    from harness.events.kafka import client_config, wait_for_group_caught_up

    try:
        caught_up = wait_for_group_caught_up(
            client_config(profile), topic, group, timeout=timeout, progress=progress
        )
    except Exception as error:  # a read-only probe: report and go on to the residue check
        progress(f"could not read consumer group {group}'s lag: {type(error).__name__}: {error}")
        return
    if not caught_up:
        progress(
            f"consumer group {group} did not catch up on {topic} in {timeout:g}s; "
            f"checking residue anyway"
        )
