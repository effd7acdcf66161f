"""Fault injection: doing to a real process what a fault of the matrix says, at the moment
its fault point holds it.

The engine's fault point (:mod:`harness.faultpoints`) appends ``<pid> <phase> <n>`` to
``HARNESS_FAULT_LOG`` and sleeps until ``<log>.release`` exists. :func:`wait_for_phase`
reads that line; :func:`inject` hurts the right process — the process group (what a terminal's
Ctrl-C reaches), the controller alone, or the process that reached the phase — then writes the
release file so every held process goes on into the fault. Connections are dropped by the
fault proxy (:mod:`tests.faultproxy`) in front of the service and the AWS endpoint, switched
to reset every connection from the phase on; a full disk is a file-size limit of 0 set on the
live process with ``prlimit`` (writes then fail with EFBIG: Python ignores SIGXFSZ).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.faultproxy import FaultPlan, FaultProxy
from tests.simulate.matrix import Fault


@dataclass(frozen=True)
class Arrival:
    pid: int
    phase: str
    count: int


def read_arrivals(log: Path) -> list[Arrival]:
    try:
        text = log.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():
            found.append(Arrival(int(parts[0]), parts[1], int(parts[2])))
    return found


def wait_for_phase(
    log: Path, exited: Callable[[], bool], timeout: float
) -> tuple[Arrival | None, str]:
    """The first arrival logged, or None with why: the command exited first, or the phase
    was not reached within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        arrivals = read_arrivals(log)
        if arrivals:
            return arrivals[0], ""
        if exited():
            # one last look: the line may have been written just before the exit
            arrivals = read_arrivals(log)
            return (arrivals[0], "") if arrivals else (None, "the run exited first")
        if time.monotonic() >= deadline:
            return None, f"not reached within {timeout:g}s"
        time.sleep(0.02)


def release(log: Path) -> None:
    Path(f"{log}.release").touch()


@dataclass
class Proxies:
    """A fault proxy in front of each upstream, forwarding until told to drop."""

    service_upstream: str
    aws_upstream: str
    seed: int = 0
    service: FaultProxy = field(init=False)
    aws: FaultProxy = field(init=False)

    def __post_init__(self) -> None:
        self.service = FaultProxy(self.service_upstream, FaultPlan(seed=self.seed))
        self.aws = FaultProxy(self.aws_upstream, FaultPlan(seed=self.seed + 1))

    def __enter__(self) -> Proxies:
        self.service.__enter__()
        self.aws.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.__exit__(*exc)
        self.aws.__exit__(*exc)

    def drop(self, upstream: str) -> None:
        proxy = self.aws if upstream == "aws" else self.service
        proxy.plan.rates.clear()
        proxy.plan.rates["reset"] = 1.0

    def heal(self) -> None:
        for proxy in (self.service, self.aws):
            proxy.plan.rates.clear()

    def dropped(self) -> int:
        return self.service.counts["reset"] + self.aws.counts["reset"]


def send(pid: int, name: str, group: bool = False) -> bool:
    """Deliver a signal; False when the process (group) is already gone."""
    number = signal.Signals[name]
    try:
        if group:
            os.killpg(pid, number)
        else:
            os.kill(pid, number)
    except ProcessLookupError:
        return False
    return True


def limit_file_size(pid: int) -> str:
    """``prlimit --pid PID --fsize=0:0``; the error text when it could not be set."""
    done = subprocess.run(
        ["prlimit", "--pid", str(pid), "--fsize=0:0"], capture_output=True, text=True
    )
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def inject(
    fault: Fault,
    arrival: Arrival,
    controller: int,
    log: Path,
    proxies: Proxies | None = None,
) -> list[str]:
    """Hurt the run as ``fault`` says, then release the held processes. Returns notes on
    what was done (for the evidence)."""
    notes: list[str] = []
    target = arrival.pid if fault.target == "phase-process" else controller
    group = fault.target == "group"
    if fault.kind == "signal":
        first, *rest = fault.signals
        delivered = send(target, first, group)
        where = f"group {target}" if group else f"pid {target}"
        notes.append(f"{first} -> {where}: {'sent' if delivered else 'already gone'}")
        release(log)
        for name in rest:
            time.sleep(fault.spacing)
            delivered = send(target, name, group)
            notes.append(f"{name} after {fault.spacing:g}s: {'sent' if delivered else 'gone'}")
        return notes
    if fault.kind == "fsize":
        error = limit_file_size(target)
        notes.append(f"fsize=0 on pid {target}" + (f": FAILED {error}" if error else ""))
    elif fault.kind == "drop":
        assert proxies is not None, "a drop fault needs the proxies"
        proxies.drop(fault.upstream)
        notes.append(f"{fault.upstream} drops every connection from {arrival.phase}")
    release(log)
    return notes


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
