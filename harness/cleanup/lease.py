"""A run's lease: "this run is alive", kept fresh while it runs, gone when it ends.

Owns the heartbeat around :class:`harness.kinds.lease.LeaseKind` (the storage, in the
profile's ``lease_table``): taken before the run writes anything, refreshed every third of its
duration, deleted through the ownership gate when the run ends. What a lease *means* — alive
or dead — is the liveness authority's to say (:mod:`harness.cleanup.liveness`), not this
module's. Protected targets get no lease: a run there writes nothing.
"""

from __future__ import annotations

import contextlib
import threading

from harness.kinds.lease import LeaseKind, lease_marker, own_holder
from harness.namespace import RunId
from harness.safety.guards import Owner, check

DEFAULT_DURATION = 120.0


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
        ids = {"marker": self.marker, "holder": own_holder()}  # never another holder's
        check(self.kind, ids, Owner(run=RunId.parse(self.run_id)))
        self.kind.delete(ids)
