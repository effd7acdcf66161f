"""Crash recovery: finishing the cleanup of runs that died on this machine.

Owns finding local runs whose controller process is gone (``owner.json`` in the run's
journal directory names host, pid and target) and replaying their journals — including
intents whose create may or may not have happened — through the guarded delete path of
that run. A run that settles completely leaves no journal behind. It never touches a run
that is still alive or whose journal belongs to another target.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cleanup.journal import SETTLED, Journal, Resource, replay, run_dir
from harness.cleanup.lease import pid_alive
from harness.cleanup.ledger import CleanupResult, Ledger, OwnershipError
from harness.kinds import Kind
from harness.kinds.lease import lease_marker
from harness.namespace import RunId
from harness.safety.guards import Owner, check, guarded_deleter

OWNER_FILE = "owner.json"


def write_owner(
    state_dir: Path, run_id: str, profile_name: str, base_url: str, shard: str = ""
) -> None:
    directory = run_dir(state_dir, run_id, shard)
    directory.mkdir(parents=True, exist_ok=True)
    owner = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "profile": profile_name,
        "base_url": base_url,
        "shard": shard,
        "started": time.time(),
    }
    # pragma: no mutate start (equivalent: JSON of ASCII names, any codec writes the same bytes)
    (directory / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    # pragma: no mutate end


@dataclass
class LocalRun:
    run_id: str
    directory: Path
    owner: dict[str, Any]

    @property
    def alive(self) -> bool:
        return self.owner.get("host") == socket.gethostname() and pid_alive(
            int(self.owner.get("pid", 0))
        )

    def unsettled(self) -> int:
        return sum(r.state not in SETTLED for path in self.journals() for r in replay(path))

    def journals(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl"))


def local_runs(state_dir: Path) -> list[LocalRun]:
    runs = []
    for directory in sorted((state_dir / "runs").glob("itest-*")):
        run_id = directory.name.partition("@")[0]
        try:
            RunId.parse(run_id)
        except ValueError:
            continue
        owner_path = directory / OWNER_FILE
        try:
            # pragma: no mutate start (equivalent: the same codec as the writer)
            owner = json.loads(owner_path.read_text(encoding="utf-8"))
            # pragma: no mutate end
        except (OSError, ValueError):
            owner = {}
        runs.append(LocalRun(run_id, directory, owner))
    return runs


def dead_runs(state_dir: Path, base_url: str | None = None) -> list[LocalRun]:
    """Local runs that are over (process gone) with something unsettled, optionally only
    those that targeted ``base_url``."""
    return [
        run
        for run in local_runs(state_dir)
        if not run.alive
        and (base_url is None or run.owner.get("base_url") == base_url)
        and run.unsettled()
    ]


def recover(run: LocalRun, kinds: dict[str, Kind]) -> CleanupResult:
    """Delete whatever the dead run's journals say may exist; journal the outcome there.
    Two processes recovering the same run at once (two runs starting together) would
    interleave journal lines, so a lock file makes the second one skip it. filelock is
    imported here, not at the top: ~14 ms of CPU that a run finding no dead run never pays."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(run.directory / ".recover.lock"))
    try:
        # pragma: no mutate start (equivalent: a longer wait, then the same skip)
        lock.acquire(timeout=0)
        # pragma: no mutate end
    except Timeout:
        return CleanupResult()
    try:
        return _recover_locked(run, kinds)
    finally:
        lock.release()


def _recover_locked(run: LocalRun, kinds: dict[str, Kind]) -> CleanupResult:
    owner = Owner(run=RunId.parse(run.run_id))
    result = CleanupResult()
    recovered: list[Resource] = []
    for path in run.journals():
        unsettled = [r for r in replay(path) if r.state not in SETTLED]
        if not unsettled:
            continue
        recovered += unsettled
        journal = Journal(path)
        try:
            # what belongs to these resources is cleaned (and counted) just below
            delete = guarded_deleter(
                kinds,
                owner,
                cascade=False,  # pragma: no mutate (equivalent: None is as false)
            )
            ledger = Ledger(journal, delete)
            ledger.adopt(unsettled)
            result.merge(ledger.cleanup())
        finally:
            journal.close()
    _clean_belonging(kinds, recovered, owner, result)
    lease = kinds.get("lease")
    if lease is not None:  # a killed run never released its lease
        ids = {"marker": lease_marker(run.run_id, str(run.owner.get("shard", "")))}
        check(lease, ids, owner)
        lease.delete(ids)
    if result.ok:
        # pragma: no mutate start (equivalent: our locked folder; nothing to ignore)
        shutil.rmtree(run.directory, ignore_errors=True)
        # pragma: no mutate end
    return result


def _clean_belonging(
    kinds: dict[str, Kind], recovered: list[Resource], owner: Owner, result: CleanupResult
) -> None:
    """What the service wrote by itself for the recovered resources (an account's session
    rows, its welcome note: ``Kind.related`` / ``Kind.derived``) goes with them, through the
    same gate — as the residue check would have done had the run lived to its end. Related
    items by the one rule (:func:`~harness.namespace.belongs`, applied by ``look_by_key``):
    never a look-alike's, such as a resource the dead run kept for debugging."""
    from harness.cleanup.residue import look_by_key

    if not recovered:
        return
    delete = guarded_deleter(
        kinds,
        owner,
        cascade=False,  # pragma: no mutate (equivalent: None is as false)
    )
    _, belonging = look_by_key(kinds, recovered, related_by_scan=True)
    for item in belonging:
        # pragma: no mutate start (equivalent: the deleter reads only the kind and the ids)
        resource = Resource(seq=0, kind=item.kind, ids=dict(item.ids), state="created")
        # pragma: no mutate end
        try:
            delete(resource)
        except OwnershipError as error:
            resource.error = str(error)
            result.refused.append(resource)
        except Exception as error:
            resource.error = f"{type(error).__name__}: {error}"
            result.failed.append(resource)
        else:
            result.belonging.append(resource)
