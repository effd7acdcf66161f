"""A run's lease: "this run is alive", kept fresh while it runs, gone when it ends.

Owns the refresh thread around :class:`harness.kinds.lease.LeaseKind` (the storage, in the
profile's ``lease_table``) and the liveness rule the sweeper applies: a lease that lapsed is a
dead run's; a lease held on this machine by a process that no longer exists is dead at once;
a run on this machine whose journal folder names a live process is alive, lease table or
not. Protected targets get no lease: a run there writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

from harness.kinds.lease import LeaseInfo, LeaseKind, lease_marker
from harness.namespace import RunId
from harness.safety.guards import Owner, check

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


def alive_runs(
    kind: LeaseKind | None, state_dir: Path | None = None, now: float | None = None
) -> dict[str, LeaseInfo]:
    """Runs that are alive: a fresh lease in the lease table (when there is one), or a run
    on this machine whose journal folder (``owner.json``) names a process that still lives."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    alive: dict[str, LeaseInfo] = {}
    if kind is not None:
        alive = {x.run_id: x for x in kind.leases() if x.alive(now, host, pid_alive)}
    if state_dir is not None:
        from harness.cleanup.recovery import local_runs

        for run in local_runs(state_dir):
            if run.alive and run.run_id not in alive:
                alive[run.run_id] = LeaseInfo(
                    run_id=run.run_id,
                    marker=lease_marker(run.run_id, str(run.owner.get("shard", ""))),
                    host=host,
                    pid=int(run.owner.get("pid", 0)),  # pragma: no mutate (equivalent: unread)
                    expires_at=now + DEFAULT_DURATION,
                )
    return alive


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
            # pragma: no mutate start (equivalent: a stopped thread ends within one wait)
            self._thread.join(timeout=5)
            # pragma: no mutate end
        ids = {"marker": self.marker}
        check(self.kind, ids, Owner(run=RunId.parse(self.run_id)))
        self.kind.delete(ids)
