"""Crash recovery: finishing the cleanup of runs that died on this machine.

Owns replaying a dead run's journal folder — including intents whose create may or may not
have happened — through the guarded delete path of that run, removing what the service wrote
for those resources and the dead run's lease, and forgetting the folder once everything in it
is settled. Which folders are dead is not decided here: every entry point takes a
:class:`~harness.cleanup.liveness.Claim`, the liveness authority's proof (the folder's locks,
held by this process, and no live lease), so nothing here can touch a live run's journal.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.cleanup.journal import SETTLED, Journal, Resource, replay, run_dir
from harness.cleanup.ledger import CleanupResult, Ledger, OwnershipError
from harness.cleanup.liveness import OWNER_FILE, Claim
from harness.kinds import Kind
from harness.kinds.lease import lease_marker
from harness.namespace import RunId
from harness.safety.guards import Owner, check, guarded_deleter

__all__ = ["OWNER_FILE", "Forgotten", "forget", "recover", "write_owner"]


def write_owner(
    state_dir: Path, run_id: str, profile_name: str, base_url: str, shard: str = ""
) -> None:
    """Say which target the run's journal folder belongs to (written once the run holds its
    folder's lock: a refused run never writes into another run's folder)."""
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


def recover(claim: Claim, kinds: dict[str, Kind]) -> CleanupResult:
    """Delete whatever the dead folder's journals say may exist, journaling the outcome there;
    then remove its lease and, once everything is settled, the folder itself."""
    folder = claim.folder
    owner = Owner(run=RunId.parse(folder.run_id))
    result = CleanupResult()
    recovered: list[Resource] = []
    for path in folder.journals():
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
    _remove_lease(claim, kinds, owner)
    if result.ok:
        _forget_folder(claim)
    return result


def _remove_lease(claim: Claim, kinds: dict[str, Kind], owner: Owner) -> None:
    """A dead run never released its lease: remove it — only while the holder judged dead
    still has it (a new run may have taken a lapsed lease over meanwhile)."""
    lease = kinds.get("lease")
    if lease is None:
        return
    ids = {"marker": lease_marker(claim.folder.run_id, claim.folder.shard)}
    if claim.lease is not None:
        ids["holder"] = claim.lease.holder
    check(lease, ids, owner)
    lease.delete(ids)


def _forget_folder(claim: Claim) -> None:
    # pragma: no mutate start (equivalent: our claimed folder; nothing to ignore)
    shutil.rmtree(claim.folder.path, ignore_errors=True)
    # pragma: no mutate end


@dataclass
class Forgotten:
    """What ``harness recover --forget`` did with a dead folder's unsettled items."""

    #: Verified gone, now settled.
    gone: list[Resource] = field(default_factory=list)
    #: Of a kind this profile does not know: not checkable, settled because the user said so.
    unchecked: list[Resource] = field(default_factory=list)
    #: Still there: never forgotten (delete them, or let recovery do it, first).
    present: list[Resource] = field(default_factory=list)


def forget(claim: Claim, kinds: dict[str, Kind]) -> Forgotten:
    """Settle the items of a dead folder that recovery cannot (refused or failed deletes):
    each is looked up by key first; only what is gone (or of an unknown kind) is settled.
    The folder and its lease go once nothing unsettled is left."""
    done = Forgotten()
    for path in claim.folder.journals():
        unsettled = [r for r in replay(path) if r.state not in SETTLED]
        if not unsettled:
            continue
        journal = Journal(path)
        try:
            for resource in unsettled:
                kind = kinds.get(resource.kind)
                if kind is None:
                    done.unchecked.append(resource)
                elif kind.exists_many([resource.ids]):
                    done.present.append(resource)
                    continue
                else:
                    done.gone.append(resource)
                journal.append("deleted", resource.seq, error="forgotten")
        finally:
            journal.close()
    if not done.present:
        _remove_lease(claim, kinds, Owner(run=RunId.parse(claim.folder.run_id)))
        _forget_folder(claim)
    return done


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
