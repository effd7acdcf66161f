"""A run's lease: "this run is alive", kept fresh while it runs, gone when it ends.

Owns the refresh thread around :class:`harness.kinds.lease.LeaseKind` (the storage) and the
liveness rule the sweeper applies: a lease that lapsed is a dead run's; a lease held on this
machine by a process that no longer exists is dead at once. Protected targets get no lease:
a run there writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

from harness.kinds.lease import LeaseInfo, LeaseKind, lease_marker
from harness.namespace import RunId
from harness.safety.guards import Owner

DEFAULT_DURATION = 120.0


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alive_runs(kind: LeaseKind, now: float | None = None) -> dict[str, LeaseInfo]:
    now = time.time() if now is None else now
    host = socket.gethostname()
    return {lease.run_id: lease for lease in kind.leases() if lease.alive(now, host, pid_alive)}


class Lease:
    """Held by a run's controller from preflight to the residue check."""

    def __init__(
        self, kind: LeaseKind, run_id: str, shard: str = "", duration: float = DEFAULT_DURATION
    ) -> None:
        self.kind = kind
        self.run_id = run_id
        self.marker = lease_marker(run_id, shard)
        self.duration = duration
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        self.kind.write(self.marker, self.duration)
        self._thread = threading.Thread(target=self._refresh, name="harness-lease", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.duration / 3):
            with contextlib.suppress(Exception):  # a missed refresh is retried next period
                self.kind.write(self.marker, self.duration)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.kind.delete({"marker": self.marker}, Owner(run=RunId.parse(self.run_id)))
