"""Multi-run scenarios (issue 25 item 6): several harness commands on one project folder at
once, with one more invariant — no live run's item is ever deleted by another command.

A *live* run is a real ``harness run`` of one test (``LIVE`` in :mod:`tests.simulate.runner`)
that signs up a user, leaves its uid in a marker file, and waits for the driver's go. While it
waits, the driver runs the other commands; after each one it looks up the live user itself
(by key, plain boto3). Then it says go, and the live run's own test reads its user back with
its token: it must pass. The scenarios:

- ``same-run-id``: a second run with the live run's ``HARNESS_RUN_ID``, then an ordinary run;
- ``shard-recover``: shards 1 and 2 of one run in their tests, shard 1 SIGKILLed (its whole
  process group), then ``harness recover RUN_ID``;
- ``other-hostname``: the live run under another hostname (a UTS namespace) in the same
  folder, then an ordinary run here;
- ``residue-live-shard``: shard 1 runs to its end while shard 2 is live, then
  ``harness residue RUN_ID``.

A full disk on the journal writer is in the single-run matrix: the ``fsize`` fault at the
phases a worker reaches (``create``, ``created``, ``cleanup`` …) limits exactly that process.
Every command is also held to invariants 1, 3 and 4, and the environment to invariant 2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from harness.namespace import RunId
from tests.simulate import digest, faults, invariants
from tests.simulate.invariants import CommandResult, Violation
from tests.simulate.matrix import MultiScenario
from tests.simulate.processes import ProcessWatch
from tests.simulate.runner import Launched, Outcome, Simulation, Workspace

OTHER_HOST = "simulate-other-host"
READY_TIMEOUT = 90.0


class Flow:
    """One multi-run scenario being played: its commands, their results, the live users."""

    def __init__(self, sim: Simulation, scenario: MultiScenario, watch: ProcessWatch) -> None:
        self.sim = sim
        self.scenario = scenario
        self.watch = watch
        self.workspace: Workspace = sim.workspace(scenario.id, live=True)
        self.outcome = Outcome(scenario)
        self.environ = sim.environ()
        self.environ["HARNESS_STATE_DIR"] = str(self.workspace.state_dir)
        self.environ["SIMULATE_MARKS"] = str(self.workspace.marks)
        self.runs: list[str] = []
        self.results: list[CommandResult] = []
        self.live_uids: dict[str, int] = {}

    def start_run(
        self,
        name: str,
        test_file: str,
        run_id: str,
        shard: str = "",
        hostname: str | None = None,
    ) -> Launched:
        environ = {**self.environ, "HARNESS_RUN_ID": run_id, "SIMULATE_LIVE": name}
        if shard:
            environ["HARNESS_SHARD"] = shard
        self.runs.append(name)
        seed = (self.scenario.seed + len(self.runs)) % 2**32
        return self.sim.launch(
            name,
            [*self.sim.run_argv(self.workspace, name, 1, seed), test_file],
            self.workspace,
            environ,
            self.watch,
            hostname=hostname,
            run_id=run_id,
            report=self.sim.report_path(self.workspace, name),
        )

    def command(self, name: str, *args: str) -> CommandResult:
        """Another harness command (recover, residue) to its end."""
        argv = self.sim.harness(*args)
        launched = self.sim.launch(name, argv, self.workspace, self.environ, self.watch)
        result = launched.finish(self.sim.exit_timeout)
        self.outcome.notes.append(f"`harness {' '.join(args)}`: {result.status}: {result.tail(2)}")
        if result.hung:
            self.outcome.violations.append(Violation(invariants.EXITS, f"{name} hung; killed"))
        return result

    def wait_live(self, launched: Launched) -> int | None:
        """The live run's uid once it is in its test (None: it never got there)."""
        ready = self.workspace.marks / f"{launched.name}.ready"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not ready.exists() and not launched.exited():
            time.sleep(0.05)
        if not ready.exists():
            self.outcome.violations.append(
                Violation(
                    invariants.REACHED,
                    f"{launched.name} never got into its test ({launched.output()[-300:]!r})",
                )
            )
            return None
        uid = int(ready.read_text())
        self.live_uids[launched.name] = uid
        return uid

    def check_live(self, after: str) -> None:
        users_table = self.sim.exports["HARNESS_USERS_TABLE"]
        for name, uid in list(self.live_uids.items()):
            if not digest.user_exists(self.sim.aws, users_table, uid):
                self.outcome.violations.append(
                    Violation(invariants.LIVE_ITEM, f"{name}'s user {uid} was deleted by {after}")
                )
                del self.live_uids[name]  # said once, by the command that took it

    def go(self, launched: Launched) -> CommandResult:
        (self.workspace.marks / f"{launched.name}.go").touch()
        result = self.finish(launched)
        if result.returncode != 0:
            self.outcome.violations.append(
                Violation(
                    invariants.LIVE_ITEM,
                    f"{launched.name}'s own check of its user failed: {result.status}: "
                    f"{_failure(result)}",
                )
            )
        return result

    def finish(self, launched: Launched, expect_interrupted: bool = False) -> CommandResult:
        result = launched.finish(self.sim.exit_timeout)
        self.results.append(result)
        self.outcome.violations += invariants.check_report(result, expect_interrupted)
        self.outcome.violations += invariants.check_leaks(result)
        return result


def _failure(result: CommandResult) -> str:
    lines = [line.strip() for line in result.output.splitlines()]
    for line in lines:
        if line.startswith("E ") and "user is gone" in line:
            return line[:200]
    return result.tail(2)


def same_run_id(flow: Flow) -> None:
    shared = str(RunId.generate())
    live = flow.start_run("live", "test_live.py", shared)
    if flow.wait_live(live) is None:
        flow.finish(live)
        return
    flow.finish(flow.start_run("same-id", "test_suite.py", shared))
    flow.check_live("a second run with the same HARNESS_RUN_ID")
    flow.finish(flow.start_run("ordinary", "test_suite.py", str(RunId.generate())))
    flow.check_live("the ordinary run after it")
    flow.go(live)


def shard_recover(flow: Flow) -> None:
    shared = str(RunId.generate())
    shard1 = flow.start_run("shard1", "test_live.py", shared, shard="1")
    shard2 = flow.start_run("shard2", "test_live.py", shared, shard="2")
    ready = [flow.wait_live(shard1), flow.wait_live(shard2)]
    if None in ready:
        flow.finish(shard1)
        flow.finish(shard2)
        return
    faults.kill_group(shard1.pid)
    flow.finish(shard1)
    del flow.live_uids["shard1"]  # killed: its user is recovery's to delete
    flow.command("recover-run", "recover", shared)
    flow.check_live(f"`harness recover {shared}` (shard 1 dead, shard 2 live)")
    flow.go(shard2)


def other_hostname(flow: Flow) -> None:
    shared = str(RunId.generate())
    live = flow.start_run("other-host", "test_live.py", shared, hostname=OTHER_HOST)
    if flow.wait_live(live) is None:
        flow.finish(live)
        return
    flow.finish(flow.start_run("ordinary", "test_suite.py", str(RunId.generate())))
    flow.check_live(f"an ordinary run on this host (the live run's host is {OTHER_HOST})")
    flow.go(live)


def residue_live_shard(flow: Flow) -> None:
    shared = str(RunId.generate())
    shard2 = flow.start_run("shard2", "test_live.py", shared, shard="2")
    if flow.wait_live(shard2) is None:
        flow.finish(shard2)
        return
    flow.finish(flow.start_run("shard1", "test_suite.py", shared, shard="1"))
    flow.check_live("shard 1's own run")
    flow.command("residue", "residue", shared, "--settle", "0.5")
    flow.check_live(f"`harness residue {shared}` (shard 2 live)")
    flow.go(shard2)


FLOWS: dict[str, Callable[[Flow], None]] = {
    "same-run-id": same_run_id,
    "shard-recover": shard_recover,
    "other-hostname": other_hostname,
    "residue-live-shard": residue_live_shard,
}


def run(sim: Simulation, scenario: MultiScenario) -> Outcome:
    before = digest.snapshot(sim.aws)
    with contextlib.ExitStack() as stack:
        watch = ProcessWatch()
        stack.callback(watch.stop)
        stack.callback(watch.kill_all)
        flow = Flow(sim, scenario, watch)
        files_before = invariants.project_files(flow.workspace.project)
        try:
            FLOWS[scenario.name](flow)
        finally:
            for name in flow.runs:  # never leave a live run waiting
                (flow.workspace.marks / f"{name}.go").touch()
        outcome = flow.outcome
        outcome.commands = flow.results
        outcome.reached = ""
        outcome.violations += invariants.check_processes(watch.wait_gone(sim.grace))
        watch.kill_all()
        outcome.violations += invariants.check_files(
            flow.workspace.project,
            files_before,
            sim.outputs(flow.workspace, flow.runs),
            flow.workspace.tmp,
        )
        found, notes = sim.settle_environment(before, flow.workspace, flow.environ, watch)
        outcome.violations += found
        outcome.notes += notes
    return outcome
