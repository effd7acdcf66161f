"""The scenario matrix: which fault is injected at which phase, with how many workers and
which seed — only the combinations that make sense.

A single-run scenario is ``(phase, fault, workers, seed)``, named ``<phase>.<fault>.n<N>``
(``create.sigkill-worker.n2``); a multi-run scenario is ``multi.<name>``. The seed is derived
from the id and a base seed, or given as ``<id>@<seed>``; it chooses the run's test data
(``harness run --seed``), the arrival of a phase that a process meets several times
(``create@2``) and the fault proxies' random plan, so a scenario replays alone with
``make simulate ARGS="--only <id>@<seed>"``.

What makes sense: a fault at a phase before the workers exist is run with one worker only
(the worker count cannot matter yet); the SIGKILL of one worker needs two workers and a phase
a worker reaches; dropped connections only where the run still talks to that upstream
afterwards; ``sandbox-start`` only for a run that starts its own sandbox, where no proxy can
be put in front of it. Every phase must be reached (a phase the engine lists but does not
mark yet would go in :data:`MAY_BE_UNREACHED`: reported "not reached" instead).

The bus (``--bus sns|kafka``) is the simulation's, not a scenario's: the same ids and seeds on
either. On Kafka the matrix is the phases where the bus matters (:data:`BUS_PHASES`: the
tests, their creates and cleanups, the drain and the residue check) and the multi-run
scenarios; ``sandbox-start`` is not run there (a run's own sandbox is an SNS one).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

from harness.faultpoints import PHASES

#: Phases a process meets once per process, before any xdist worker exists.
BEFORE_WORKERS = ("sandbox-start", "preflight", "lock", "lease", "recovery")
#: Phases an xdist worker reaches (``harness run -n N`` always runs xdist, also for N = 1).
WORKER_PHASES = ("collection", "create", "created", "cleanup", "worker-finish")
#: Phases of the controller after the last worker.
END_PHASES = ("drain", "residue", "report", "alert")
#: The phases where the bus matters: what the tests publish and read, the service's consumer
#: behind them, the drain wait and the residue check (the Kafka matrix).
BUS_PHASES = (*WORKER_PHASES, "drain", "residue")
BUSES = ("sns", "kafka")
#: Listed in :data:`harness.faultpoints.PHASES` but not marked by the engine yet: reported
#: as "not reached" rather than as a violation (remove a phase from here once it is marked).
#: None today: ``lock`` is marked (its 10 scenarios reached it on 2026-12-06).
MAY_BE_UNREACHED: frozenset[str] = frozenset()
#: Phases a process meets more than once in one run: the seed picks which arrival (``@N``),
#: among those a one-worker run of the scenario suite always reaches.
REPEATED = {"create": 3, "created": 3, "cleanup": 3}
#: The last phase after which the run still talks to each upstream.
LAST_USE = {"aws": "residue", "service": "worker-finish"}

Target = Literal["group", "controller", "phase-process"]


@dataclass(frozen=True)
class Fault:
    """One way a run is hurt. ``interrupts``: the run must then say ``interrupted`` (130)
    if it lives to say anything."""

    name: str
    what: str
    kind: Literal["signal", "fsize", "drop"]
    target: Target = "phase-process"
    signals: tuple[str, ...] = ()
    spacing: float = 0.0
    upstream: Literal["aws", "service", ""] = ""
    interrupts: bool = False
    needs_worker: bool = False


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("sigint", "Ctrl-C once (SIGINT to the process group, as a terminal sends it)",
              "signal", "group", ("SIGINT",), interrupts=True),
        *(
            Fault(f"sigint2-{gap:g}", f"Ctrl-C twice, {gap:g} s apart (process group)",
                  "signal", "group", ("SIGINT", "SIGINT"), spacing=gap, interrupts=True)
            for gap in (0.05, 0.3, 1.0)
        ),
        Fault("sigterm-controller", "SIGTERM to the controller only (a CI runner's cancel)",
              "signal", "controller", ("SIGTERM",), interrupts=True),
        Fault("sigterm-group", "SIGTERM to the process group", "signal", "group",
              ("SIGTERM",), interrupts=True),
        Fault("sigkill-controller", "SIGKILL of the controller", "signal", "controller",
              ("SIGKILL",)),
        Fault("sigkill-worker", "SIGKILL of the worker that reached the phase", "signal",
              "phase-process", ("SIGKILL",), needs_worker=True),
        Fault("fsize", "full disk: file-size limit 0 on the process that reached the phase "
              "(prlimit --fsize=0:0)", "fsize"),
        Fault("drop-aws", "the AWS endpoint drops every connection from the phase on",
              "drop", upstream="aws"),
        Fault("drop-service", "the service drops every connection from the phase on",
              "drop", upstream="service"),
    )
}  # fmt: skip


def derive_seed(scenario_id: str, base: int) -> int:
    return zlib.crc32(f"{base}:{scenario_id}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Scenario:
    """One real ``harness run`` with one fault at one phase."""

    phase: str
    fault: str
    workers: int
    seed: int

    @property
    def id(self) -> str:
        return f"{self.phase}.{self.fault}.n{self.workers}"

    @property
    def replay(self) -> str:
        return f"{self.id}@{self.seed}"

    @property
    def arrival(self) -> int:
        """Which arrival at the phase the fault waits for (1 = the first)."""
        count = REPEATED.get(self.phase, 1) if self.workers == 1 else 1
        return 1 + self.seed % count

    @property
    def fault_at(self) -> str:
        """The value of ``HARNESS_FAULT_AT``."""
        return self.phase if self.arrival == 1 else f"{self.phase}@{self.arrival}"

    @property
    def own_sandbox(self) -> bool:
        """The run starts a sandbox of its own (the only way to reach ``sandbox-start``)."""
        return self.phase == "sandbox-start"

    @property
    def must_reach(self) -> bool:
        return self.phase not in MAY_BE_UNREACHED

    @property
    def spec(self) -> Fault:
        return FAULTS[self.fault]


@dataclass(frozen=True)
class MultiScenario:
    """Several commands at once against one project folder (issue 25 item 6)."""

    name: str
    what: str
    seed: int

    @property
    def id(self) -> str:
        return f"multi.{self.name}"

    @property
    def replay(self) -> str:
        return f"{self.id}@{self.seed}"

    #: For the table: multi-run scenarios are one row group of their own.
    phase = "multi-run"

    @property
    def fault(self) -> str:
        return self.name


MULTI = {
    "same-run-id": "two runs with the same HARNESS_RUN_ID at once, then an ordinary run",
    "shard-recover": "shards 1 and 2 of one run in tests; shard 1 SIGKILLed; "
    "`harness recover RUN_ID`",
    "other-hostname": "a run under another hostname (UTS namespace) in the same folder, "
    "then an ordinary run",
    "residue-live-shard": "`harness residue RUN_ID` while one shard is still in a test",
}

AnyScenario = Scenario | MultiScenario


def makes_sense(phase: str, fault: Fault, workers: int) -> bool:
    if phase in BEFORE_WORKERS and workers != 1:
        return False  # no worker exists yet: the count cannot matter
    if fault.needs_worker and (workers < 2 or phase not in WORKER_PHASES):
        return False
    if fault.kind == "drop":
        if phase == "sandbox-start":
            return False  # the run's own sandbox: no proxy in front of it
        return PHASES.index(phase) <= PHASES.index(LAST_USE[fault.upstream])
    return True


def phases(bus: str = "sns") -> tuple[str, ...]:
    """The phases of the bus's matrix, in order."""
    return PHASES if bus == "sns" else BUS_PHASES


def full_matrix(base_seed: int = 1, bus: str = "sns") -> list[AnyScenario]:
    """Every scenario that makes sense on the bus, in phase order; the multi-run scenarios
    last."""
    found: list[AnyScenario] = []
    for phase in phases(bus):
        for workers in (1, 2):
            for fault in FAULTS.values():
                if makes_sense(phase, fault, workers):
                    sid = f"{phase}.{fault.name}.n{workers}"
                    found.append(Scenario(phase, fault.name, workers, derive_seed(sid, base_seed)))
    for name, what in MULTI.items():
        found.append(MultiScenario(name, what, derive_seed(f"multi.{name}", base_seed)))
    return found


#: ``--quick``: every fault at least once, every phase at least once, both worker counts.
QUICK = (
    "sandbox-start.sigint.n1",
    "preflight.sigterm-controller.n1",
    "lease.sigkill-controller.n1",
    "recovery.drop-aws.n1",
    "collection.sigint.n2",
    "create.sigint2-0.05.n1",
    "create.sigkill-worker.n2",
    "created.fsize.n1",
    "created.drop-service.n2",
    "cleanup.sigint2-0.3.n2",
    "cleanup.sigterm-group.n1",
    "worker-finish.sigint2-1.n1",
    "worker-finish.sigterm-controller.n2",
    "drain.sigint.n1",
    "residue.sigterm-controller.n1",
    "residue.drop-aws.n2",
    "report.fsize.n1",
    "report.sigkill-controller.n2",
    "alert.sigint.n1",
    "multi.same-run-id",
    "multi.shard-recover",
    "multi.other-hostname",
    "multi.residue-live-shard",
)

#: ``--quick --bus kafka``: every fault at least once, every phase of :data:`BUS_PHASES`,
#: both worker counts, and the multi-run scenarios.
QUICK_KAFKA = (
    "collection.sigterm-group.n2",
    "create.sigint.n1",
    "create.drop-aws.n2",
    "created.sigkill-worker.n2",
    "created.sigint2-0.05.n1",
    "cleanup.fsize.n2",
    "cleanup.sigint2-0.3.n1",
    "worker-finish.sigkill-controller.n2",
    "worker-finish.drop-service.n1",
    "drain.sigint.n2",
    "drain.sigint2-1.n1",
    "residue.sigterm-controller.n1",
    "multi.same-run-id",
    "multi.shard-recover",
    "multi.other-hostname",
    "multi.residue-live-shard",
)
QUICKS = {"sns": QUICK, "kafka": QUICK_KAFKA}


def parse_selector(text: str, base_seed: int = 1, bus: str = "sns") -> AnyScenario:
    """``<id>`` (seed derived from ``base_seed``) or ``<id>@<seed>``. Any phase replays on
    either bus, but ``sandbox-start`` (a run's own sandbox: SNS) not on Kafka."""
    sid, _, seed_text = text.partition("@")
    seed = int(seed_text) if seed_text else derive_seed(sid, base_seed)
    if sid.startswith("multi."):
        name = sid.removeprefix("multi.")
        if name not in MULTI:
            raise ValueError(f"unknown multi-run scenario {sid!r}; known: {', '.join(MULTI)}")
        return MultiScenario(name, MULTI[name], seed)
    parts = sid.rsplit(".", 1)
    if len(parts) != 2 or not parts[1].startswith("n") or not parts[1][1:].isdigit():
        raise ValueError(f"{sid!r} is not <phase>.<fault>.n<workers> or multi.<name>")
    head, workers = parts[0], int(parts[1][1:])
    phase, _, fault = head.partition(".")
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    if not makes_sense(phase, FAULTS[fault], workers):
        raise ValueError(f"{sid}: this combination is not in the matrix (it makes no sense)")
    if bus != "sns" and phase == "sandbox-start":
        raise ValueError(f"{sid}: not on --bus {bus} (a run's own sandbox is an SNS one)")
    return Scenario(phase, fault, workers, seed)


def select(selectors: list[str], base_seed: int = 1, bus: str = "sns") -> list[AnyScenario]:
    return [parse_selector(s, base_seed, bus) for s in selectors]
