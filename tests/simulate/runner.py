"""The runner: one sandbox for a whole simulation, a fresh project per scenario, and one
single-run scenario from start to verdict.

:class:`Simulation` starts the sandbox (the harness's own launcher; ``bus="kafka"``: with
``--bus kafka``, a real Kafka broker and schema registry behind it) and always stops it, and
removes its work folder (under the repository's ``.harness/simulate/``, never ``/tmp``: each
command gets a private ``/tmp`` of its own, a bind mount in a mount namespace, which would hide
a project kept there). A scenario's command is a real ``python -m harness run … -n N`` in its
own session, run from a fresh project folder holding a tiny suite on the reference adapter's
fixtures, with ``HARNESS_FAULT_AT`` naming the phase, its own state directory and a stale
passing report at its report path. The runner waits (bounded) for the fault point's line,
injects the fault (:mod:`tests.simulate.faults`), waits (bounded) for the exit, then checks
every invariant (:mod:`tests.simulate.invariants`) and puts the environment back for the next
scenario. Multi-run scenarios are in :mod:`tests.simulate.multirun`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.faultpoints import PHASES
from harness.namespace import RunId
from harness.run.local_sandbox import LocalSandbox
from tests.simulate import digest, faults, invariants
from tests.simulate.invariants import CommandResult, Violation
from tests.simulate.matrix import AnyScenario, MultiScenario, Scenario
from tests.simulate.processes import ProcessWatch

REPO = Path(__file__).resolve().parents[2]

CONFTEST = 'pytest_plugins = ["fixtures.users"]\n'
PYTEST_INI = "[pytest]\n"
SUITE = '''"""The fault simulation's scenario suite: everything through the reference adapter's
ledger-backed fixtures, so whatever the run made, it recorded."""


def test_user_and_token(user_factory, token_factory):
    token_factory(user_factory())


def test_two_users(user_factory):
    user_factory()
    user_factory(login=False)


def test_user_created_event(user, events):
    events.expect_event("user.created", where={"uid": user.uid}, timeout=15)


def test_token_without_user(token_factory):
    token_factory()
'''
#: A live run's one test: it says it is in its test, waits for the driver's go, then checks
#: that its own user is still there (another command may not have taken it).
LIVE = '''"""A live run: holds a user until the driver says go, then reads it back."""
import os
from pathlib import Path

from harness.waiting import wait_until


def test_live_user_is_still_there(api, user):
    marks = Path(os.environ["SIMULATE_MARKS"])
    name = os.environ["SIMULATE_LIVE"]
    ready = marks / f"{name}.ready"
    ready.with_suffix(".tmp").write_text(str(user.uid))
    ready.with_suffix(".tmp").rename(ready)
    wait_until((marks / f"{name}.go").exists, timeout=300)
    response = api.get(f"/users/{user.uid}", auth=user.auth)
    assert response.status_code == 200, (
        f"the live run's user is gone: {response.status_code} {response.text}"
    )
'''


@dataclass
class Outcome:
    """A scenario's verdict and its evidence."""

    scenario: AnyScenario
    violations: list[Violation] = field(default_factory=list)
    reached: str = "reached"
    notes: list[str] = field(default_factory=list)
    commands: list[CommandResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        s = self.scenario
        lines = [f"{s.replay}: {len(self.violations)} violation(s), {self.reached}"]
        lines += [f"  {c.name}: {c.status}; {c.said()}" for c in self.commands]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  [{v.invariant}] {v.detail}" for v in self.violations]
        for c in self.commands:
            if c.output:
                lines.append(f"  {c.name} output: {c.tail()}")
        return "\n".join(lines)


@dataclass
class Workspace:
    """A scenario's folder: the project (its cwd, with ``.harness/``), a private ``/tmp``,
    the marks live runs leave, and the fault log."""

    root: Path

    @property
    def project(self) -> Path:
        return self.root / "project"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def marks(self) -> Path:
        return self.root / "marks"

    @property
    def state_dir(self) -> Path:
        return self.project / ".harness"

    def fault_log(self, name: str = "run") -> Path:
        return self.root / f"fault-{name}.log"

    def create(self, live: bool = False) -> None:
        for folder in (self.project, self.tmp, self.marks):
            folder.mkdir(parents=True)
        (self.project / "pytest.ini").write_text(PYTEST_INI)
        (self.project / "conftest.py").write_text(CONFTEST)
        (self.project / "test_suite.py").write_text(SUITE)
        if live:
            (self.project / "test_live.py").write_text(LIVE)


class Launched:
    """One command of a scenario: a child in its own session (and mount namespace), its
    output collected from a pipe (a file-size limit on it must not stop its output)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        cwd: Path,
        environ: dict[str, str],
        watch: ProcessWatch,
        private_tmp: Path | None,
        hostname: str | None = None,
        run_id: str = "",
        report: Path | None = None,
    ) -> None:
        self.name = name
        self.run_id = run_id
        self.report = report
        self.stale = invariants.stale_report(report) if report is not None else ""
        self._chunks: list[str] = []
        self.process = subprocess.Popen(
            _wrap(argv, private_tmp, hostname),
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        watch.add_root(self.process.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while chunk := os.read(descriptor, 65536):
            self._chunks.append(chunk.decode(errors="replace"))

    def exited(self) -> bool:
        return self.process.poll() is not None

    def output(self) -> str:
        return "".join(self._chunks)

    def finish(self, timeout: float) -> CommandResult:
        """Wait for the exit; a command still running after ``timeout`` is a hang: its whole
        process group is killed and it is reported as such."""
        hung = False
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            hung = True
            faults.kill_group(self.process.pid)
            self.process.wait(10)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return CommandResult(
            name=self.name,
            run_id=self.run_id,
            returncode=None if hung else self.process.returncode,
            output=self.output(),
            report_path=self.report,
            stale_text=self.stale,
            hung=hung,
        )


def _wrap(argv: list[str], private_tmp: Path | None, hostname: str | None) -> list[str]:
    """The command in a mount namespace with ``private_tmp`` bound on ``/tmp`` (what it
    leaves there is its own) and, with ``hostname``, a UTS namespace with that name."""
    if private_tmp is None and hostname is None:
        return argv
    steps = []
    if private_tmp is not None and invariants.CHECKOUT_IN_TMP:
        # The checkout lies under /tmp (a clone in /tmp/fresh): the private /tmp would hide
        # it, its .venv and harness/ with it. It is bound at its own path inside the private
        # one first, and the two go on /tmp together. The namespace's mounts never reach
        # this one (private propagation): removing the private /tmp never touches the checkout.
        point = shlex.quote(str(private_tmp.joinpath(*invariants.CHECKOUT_IN_TMP)))
        checkout = shlex.quote(str(REPO))
        steps.append(f"mkdir -p {point} && mount --bind {checkout} {point} || exit 97")
        steps.append(f"mount --rbind {shlex.quote(str(private_tmp))} /tmp || exit 97")
    elif private_tmp is not None:
        steps.append(f"mount --bind {shlex.quote(str(private_tmp))} /tmp || exit 97")
    if hostname is not None:
        steps.append(f"hostname {shlex.quote(hostname)} || exit 97")
    flags = ["--mount", "--propagation", "private"] if private_tmp is not None else []
    if hostname is not None:
        flags.append("--uts")
    return ["unshare", *flags, "sh", "-c", "; ".join([*steps, 'exec "$@"']), "sh", *argv]


def _namespaces_work(folder: Path) -> bool:
    """Can this machine give a command a private /tmp (root, mount namespaces allowed)?"""
    try:
        with _scratch(folder):
            done = subprocess.run(
                _wrap(["sh", "-c", "touch /tmp/probe"], folder, None),
                capture_output=True,
                timeout=20,
            )
            return done.returncode == 0 and (folder / "probe").exists()
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def _scratch(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class Simulation:
    """``with Simulation() as sim: outcome = sim.run(scenario)``."""

    def __init__(
        self,
        workdir: Path | None = None,
        keep: bool = False,
        reach_timeout: float = 60.0,
        exit_timeout: float = 180.0,
        grace: float = 5.0,
        hold: float = 60.0,
        progress: Callable[[str], None] = lambda _: None,
        bus: str = "sns",
    ) -> None:
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.root = workdir or REPO / ".harness" / "simulate" / stamp
        self.keep = keep
        self.reach_timeout = reach_timeout
        self.exit_timeout = exit_timeout
        self.grace = grace
        self.hold = hold
        self.progress = progress
        self.bus = bus
        self.sandbox: LocalSandbox | None = None
        self._aws: digest.Aws | None = None
        self.private_tmp = True

    def __enter__(self) -> Simulation:
        #: Folders made here for the work folder (removed again when left empty).
        self._made = [p for p in (self.root.parent, self.root.parent.parent) if not p.exists()]
        own = REPO / ".harness" / "simulate"
        if self.root.parent == own and own not in self._made:
            # the driver's own folder, also when another simulation made it (two at once, as
            # the make-test module's SNS and Kafka ones): whoever ends last removes it
            self._made.insert(0, own)
        self.root.mkdir(parents=True, exist_ok=False)
        try:
            self.private_tmp = _namespaces_work(self.root / "probe")
            if not self.private_tmp:
                self.progress("no mount namespaces here: /tmp entries are not checked")
            args = [] if self.bus == "sns" else ["--bus", self.bus]
            self.sandbox = LocalSandbox.start(self.root / "sandbox.log", args)
            self.exports = dict(self.sandbox.exports)
            if self.exports.get("HARNESS_EVENTS_BUS", "sns") != self.bus:
                raise RuntimeError(f"asked for a {self.bus} sandbox, got {self.exports}")
            self._aws = digest.Aws(self.exports)
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def aws(self) -> digest.Aws:
        """The digest's clients on the running sandbox (its emulator, its Kafka broker)."""
        assert self._aws is not None, "the simulation is not running"
        return self._aws

    def __exit__(self, *exc: object) -> None:
        if self._aws is not None:
            self._aws.close()  # no Kafka client left retrying a stopped broker
            self._aws = None
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
            for folder in self._made:  # .harness/simulate, .harness: when nothing else is there
                with contextlib.suppress(OSError):
                    folder.rmdir()

    # -- pieces the scenarios share --------------------------------------------------------

    def environ(self, own_sandbox: bool = False) -> dict[str, str]:
        """What a command needs (tests/conftest.py ``sandbox_environ``): the sandbox's exports,
        the repository's profiles and its fixtures package — no other ``HARNESS_*``."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
        if not own_sandbox:
            environ.update(self.exports)
        environ["HARNESS_CONFIG"] = str(REPO / "environments.toml")
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        return environ

    def workspace(self, scenario_id: str, live: bool = False) -> Workspace:
        workspace = Workspace(self.root / _safe(scenario_id))
        if workspace.root.exists():
            shutil.rmtree(workspace.root)
        workspace.create(live)
        return workspace

    def launch(
        self,
        name: str,
        argv: list[str],
        workspace: Workspace,
        environ: dict[str, str],
        watch: ProcessWatch,
        *,
        hostname: str | None = None,
        run_id: str = "",
        report: Path | None = None,
    ) -> Launched:
        return Launched(
            name,
            argv,
            workspace.project,
            environ,
            watch,
            workspace.tmp if self.private_tmp else None,
            hostname,
            run_id,
            report,
        )

    @staticmethod
    def harness(*args: str) -> list[str]:
        return [sys.executable, "-m", "harness", *args]

    def run_argv(self, workspace: Workspace, name: str, workers: int, seed: int) -> list[str]:
        """The brief's command: ``harness run --report … --junitxml … -n N --residue-settle
        0.5`` (and the scenario's seed for the test data)."""
        return self.harness(
            "run",
            "--report",
            str(self.report_path(workspace, name)),
            f"--junitxml={workspace.project / f'junit-{name}.xml'}",
            "-n",
            str(workers),
            "--residue-settle",
            "0.5",
            "--seed",
            str(seed),
        )

    @staticmethod
    def report_path(workspace: Workspace, name: str) -> Path:
        return workspace.project / f"report-{name}.json"

    def outputs(self, workspace: Workspace, names: list[str]) -> list[Path]:
        return [
            path
            for name in names
            for path in (
                self.report_path(workspace, name),
                workspace.project / f"junit-{name}.xml",
            )
        ]

    def settle_environment(
        self,
        before: digest.State,
        workspace: Workspace,
        environ: dict[str, str],
        watch: ProcessWatch,
    ) -> tuple[list[Violation], list[str]]:
        """Invariant 2: the digest equals ``before``, after at most one ``harness recover``
        (no arguments, the same environment and state directory). Then, whatever the
        verdict, the environment is put back for the next scenario."""
        notes: list[str] = []
        after = digest.snapshot(self.aws)
        lines = digest.diff(before, after)
        recovered = "no recover"
        if lines:
            recover_env = {
                k: v
                for k, v in environ.items()
                if not k.startswith("HARNESS_FAULT") and k != "HARNESS_RUN_ID"
            }
            command = self.launch(
                "recover", self.harness("recover"), workspace, recover_env, watch
            ).finish(120)
            recovered = f"one `harness recover` ({command.status}: {command.tail(2)})"
            after = digest.snapshot(self.aws)
            lines = digest.diff(before, after)
            if not lines:
                notes.append(f"environment restored by {recovered}")
        found = invariants.check_environment(lines, recovered)
        if lines:
            problems = digest.restore(self.aws, before, after)
            notes += [f"could not put back: {p}" for p in problems]
        return found, notes

    # -- scenarios ------------------------------------------------------------------------

    def run(self, scenario: AnyScenario) -> Outcome:
        started = time.monotonic()
        if isinstance(scenario, MultiScenario):
            from tests.simulate import multirun

            outcome = multirun.run(self, scenario)
        else:
            outcome = self._single(scenario)
        outcome.seconds = round(time.monotonic() - started, 1)
        if outcome.ok and not self.keep:
            shutil.rmtree(self.root / _safe(scenario.id), ignore_errors=True)
        return outcome

    def _single(self, s: Scenario) -> Outcome:
        fault = s.spec
        workspace = self.workspace(s.id)
        outcome = Outcome(s)
        environ = self.environ(own_sandbox=s.own_sandbox)
        run_id = str(RunId.generate())
        log = workspace.fault_log()
        environ.update(
            HARNESS_RUN_ID=run_id,
            HARNESS_STATE_DIR=str(workspace.state_dir),
            HARNESS_FAULT_AT=s.fault_at,
            HARNESS_FAULT_LOG=str(log),
            HARNESS_FAULT_HOLD=str(self.hold),
        )
        proxies: faults.Proxies | None = None
        if fault.kind == "drop":
            proxies = faults.Proxies(
                self.exports["HARNESS_BASE_URL"], self.exports["HARNESS_AWS_ENDPOINT_URL"], s.seed
            )
        before = digest.snapshot(self.aws)
        with contextlib.ExitStack() as stack:
            if proxies is not None:
                stack.enter_context(proxies)
                environ["HARNESS_BASE_URL"] = proxies.service.url
                environ["HARNESS_AWS_ENDPOINT_URL"] = proxies.aws.url
            watch = ProcessWatch()
            stack.callback(watch.stop)
            files_before = invariants.project_files(workspace.project)
            command = self.launch(
                "run",
                self.run_argv(workspace, "run", s.workers, s.seed),
                workspace,
                environ,
                watch,
                run_id=run_id,
                report=self.report_path(workspace, "run"),
            )
            arrival, why = faults.wait_for_phase(log, command.exited, self.reach_timeout)
            if arrival is None:
                outcome.reached = f"not reached ({why})"
                if s.must_reach:
                    outcome.violations.append(Violation(invariants.REACHED, f"{s.fault_at}: {why}"))
            else:
                outcome.notes += faults.inject(fault, arrival, command.pid, log, proxies)
                outcome.notes.append(
                    f"{s.fault_at} reached by pid {arrival.pid}"
                    + (" (the controller)" if arrival.pid == command.pid else " (a worker)")
                )
            result = command.finish(self.exit_timeout)
            left = watch.wait_gone(self.grace)
            watch.kill_all()
            if proxies is not None:
                outcome.notes.append(f"{proxies.dropped()} connection(s) dropped")
                proxies.heal()
            outcome.commands.append(result)
            verdict_pending = PHASES.index(s.phase) < PHASES.index("report")
            outcome.violations += invariants.check_report(
                result, expect_interrupted=fault.interrupts and verdict_pending and bool(arrival)
            )
            outcome.violations += invariants.check_leaks(result)
            outcome.violations += invariants.check_processes(left)
            outcome.violations += invariants.check_files(
                workspace.project,
                files_before,
                self.outputs(workspace, ["run"]),
                workspace.tmp,
            )
            found, notes = self.settle_environment(before, workspace, environ, watch)
            outcome.violations += found
            outcome.notes += notes
            watch.wait_gone(self.grace)
            watch.kill_all()
        return outcome
