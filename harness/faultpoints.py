"""Fault points: named phase boundaries of a run where a fault simulation can catch a process.

The lifecycle is tested by a driver (``tests/simulate``, ``make simulate``) that injects a fault
— a signal, a file-size limit, a dropped connection — at every phase of a real ``harness run``.
Reaching a phase by sleeping is a guess; these points make it exact. Each phase boundary of the
engine calls :func:`reach` with its name. Unless ``HARNESS_FAULT_AT`` names that phase, the call
costs one dictionary lookup and does nothing. When it does, the process:

1. appends ``<pid> <phase> <n>`` to the file ``HARNESS_FAULT_LOG`` (the driver watches it),
2. waits until the file ``<HARNESS_FAULT_LOG>.release`` exists or ``HARNESS_FAULT_HOLD``
   seconds (default 10) have passed — asleep, so a signal lands there at once — and goes on.

``HARNESS_FAULT_AT`` is a comma-separated list of ``phase`` (the first arrival in a process) or
``phase@N`` (the N-th). It owns nothing else: it never changes what a run does, only when.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

#: Every phase boundary the engine marks, in the order a run meets them.
PHASES = (
    "sandbox-start",  # the run's own sandbox was spawned, not yet ready
    "preflight",  # the profile is resolved; nothing checked or written yet
    "lock",  # the run holds its journal folder's lock; no lease yet
    "lease",  # the run's lease is written
    "recovery",  # before recovering dead runs of this target
    "collection",  # tests collected, none run
    "create",  # a create's intent is journaled; its request not sent
    "created",  # a create answered and is journaled
    "cleanup",  # a resource is about to be deleted by the ledger
    "worker-finish",  # a process's final cleanup of what its ledger still holds
    "drain",  # waiting for the service's consumers before the residue check
    "residue",  # the residue check is about to look
    "report",  # the verdict is known; the JSON report is about to be written
    "alert",  # summaries and alerts are about to go out
)

_ARRIVALS: Counter[str] = Counter()


def _wanted(phase: str, arrival: int, spec: str) -> bool:
    for entry in spec.split(","):
        name, _, nth = entry.strip().partition("@")
        if name == phase and arrival == (int(nth) if nth.isdigit() else 1):
            return True
    return False


def reach(phase: str) -> None:
    """Mark a phase boundary; pause here when the fault simulation asked for it."""
    spec = os.environ.get("HARNESS_FAULT_AT")
    if not spec:
        return
    _ARRIVALS[phase] += 1
    if not _wanted(phase, _ARRIVALS[phase], spec):
        return
    log = os.environ.get("HARNESS_FAULT_LOG")
    if not log:
        return
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {phase} {_ARRIVALS[phase]}\n")
    release = Path(f"{log}.release")
    deadline = time.monotonic() + float(os.environ.get("HARNESS_FAULT_HOLD") or 10)
    while time.monotonic() < deadline and not release.exists():
        time.sleep(0.02)
