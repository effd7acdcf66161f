"""Liveness: the one authority on whether a run — each shard, each worker's journal — is alive.

Every command that deletes asks here, per journal folder and per shard, never once per run:
``harness run``'s start-up recovery, ``harness recover [RUN_ID]``, ``harness residue RUN_ID``,
the sweeper and ``harness doctor``. Two signals decide, and nothing else:

(a) **An OS lock.** Every process that writes a journal holds an exclusive advisory lock
    (``flock``) on its own lock file beside it — ``<state>/runs/<run>[@sNN]/<worker>.lock`` —
    from before the first byte of its journal until its cleanup is over. The kernel drops it
    when the process dies, however it died. On one machine (one kernel) this is exact: host
    names, pid namespaces and containers that share the folder do not matter.
(b) **A lease** in the profile's ``lease_table``, when it has one: alive until it lapses
    (its holder's heartbeat renews it); a holder that provably shares this kernel and pid
    namespace (:mod:`harness.host`) and whose process is gone is dead at once. Runs on other
    machines are known only through (b).

A part of a run is dead only when neither says alive; "I cannot tell" (a lease table that
cannot be read, a lock file that cannot be opened) is alive. A command deletes a dead folder's
items only while it holds that folder's locks itself (a :class:`Claim`): a run that starts in
the folder meanwhile is refused, and two recoverers never replay one journal twice.

It owns the locks and the verdicts; it never deletes anything and reads the environment only
to read leases.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cleanup.journal import SETTLED, replay
from harness.host import Machine, pid_alive, this_machine
from harness.kinds.lease import LeaseInfo, lease_marker
from harness.namespace import RunId

if TYPE_CHECKING:
    from harness.kinds.lease import LeaseKind

LOCK_SUFFIX = ".lock"
OWNER_FILE = "owner.json"


class RunInUse(Exception):
    """A live process holds this run id (its lock or its lease); the message names it."""


# ---------------------------------------------------------------------------------------------
# (a) the OS lock


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s exclusive lock, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


@dataclass
class HeldLock:
    """The lock a live process holds on its own journal's folder for as long as it writes."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing drops the flock
            self.fd = None


def hold(folder: Path, worker: str) -> HeldLock:
    """Take ``<folder>/<worker>.lock`` for this process, creating the folder if needed; write
    the holder's pid into it (for the controller, to signal its own workers). Raises
    :class:`RunInUse` when a live process holds it: a second run with this run id and shard."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{worker}{LOCK_SUFFIX}"
    fd = _try_lock(path)
    if fd is None:
        raise RunInUse(f"{path} is locked by a live process")
    # pragma: no mutate start (equivalent: the pid written next covers any shorter length)
    os.ftruncate(fd, 0)
    # pragma: no mutate end
    os.write(fd, f"{os.getpid()}\n".encode())
    return HeldLock(path, fd)


def held_by_others(folder: Path, mine: Collection[Path] = ()) -> list[str]:
    """The workers whose lock in ``folder`` a live process holds — not counting the locks in
    ``mine`` (this process's own: a second flock of it from here would conflict too)."""
    busy = []
    for path in sorted(folder.glob(f"*{LOCK_SUFFIX}")):
        if path in mine:
            continue
        try:
            fd = _try_lock(path)
        except OSError:
            fd = None  # cannot tell: busy
        if fd is None:
            busy.append(path.name[: -len(LOCK_SUFFIX)])
        else:
            os.close(fd)
    return busy


def lock_holder_pids(folder: Path) -> dict[str, int]:
    """worker -> the pid written in its lock file (informative only: never a liveness proof)."""
    pids: dict[str, int] = {}
    for path in sorted(folder.glob(f"*{LOCK_SUFFIX}")):
        with contextlib.suppress(OSError, ValueError):
            pids[path.name[: -len(LOCK_SUFFIX)]] = int(path.read_text().split()[0])
    return pids


# ---------------------------------------------------------------------------------------------
# journal folders


@dataclass
class RunFolder:
    """One journal folder: ``runs/<run id>`` or, for a CI shard, ``runs/<run id>@s01``."""

    run_id: str
    shard: str
    path: Path
    owner: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def journals(self) -> list[Path]:
        return sorted(self.path.glob("*.jsonl"))

    def unsettled(self) -> int:
        return sum(r.state not in SETTLED for path in self.journals() for r in replay(path))

    def lock_files(self) -> list[Path]:
        """Every lock this folder needs: one per journal (also a journal whose lock file is
        missing) and any lock file without a journal yet."""
        names = {p.name[: -len(LOCK_SUFFIX)] for p in self.path.glob(f"*{LOCK_SUFFIX}")}
        names |= {p.stem for p in self.journals()}
        return [self.path / f"{name}{LOCK_SUFFIX}" for name in sorted(names)]


def run_folders(state_dir: Path, run_id: str | None = None) -> list[RunFolder]:
    """The journal folders under ``state_dir`` (of one run, with every shard, when asked)."""
    found = []
    for directory in sorted((state_dir / "runs").glob("itest-*")):
        if not directory.is_dir():
            continue
        rid, _, shard = directory.name.partition("@")
        try:
            RunId.parse(rid)
        except ValueError:
            continue
        if run_id is not None and rid != run_id:
            continue
        owner: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            # pragma: no mutate start (equivalent: the same codec as the writer)
            loaded = json.loads((directory / OWNER_FILE).read_text(encoding="utf-8"))
            # pragma: no mutate end
            owner = loaded if isinstance(loaded, dict) else {}
        found.append(RunFolder(rid, shard, directory, owner))
    return found


@dataclass
class Claim:
    """A dead folder's locks, held by the process that recovers or forgets it."""

    folder: RunFolder
    #: The lease of the folder's run and shard as it was judged (dead), to remove it only
    #: while that holder still has it.
    lease: LeaseInfo | None
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _claim_locks(folder: RunFolder) -> list[int] | None:
    """Every lock of the folder, or None (and nothing held) when any is held elsewhere or
    cannot be taken ("cannot tell" is alive)."""
    fds: list[int] = []
    try:
        for path in folder.lock_files():
            fd = _try_lock(path)
            if fd is None:
                break
            fds.append(fd)
        else:
            return fds
    except OSError:
        pass
    for fd in fds:
        os.close(fd)
    return None


# ---------------------------------------------------------------------------------------------
# (b) leases, and the verdict


@dataclass(frozen=True)
class Verdict:
    alive: bool
    why: str


def lease_alive(
    lease: LeaseInfo,
    now: float,
    machine: Machine,
    is_running: Callable[[int], bool] = pid_alive,
) -> bool:
    """Alive until it lapses — unless its holder provably shares this kernel and pid
    namespace and its process is gone."""
    if lease.expires_at <= now:
        return False
    return not (machine.shares_pids_with(lease.boot, lease.pidns) and not is_running(lease.pid))


class Liveness:
    """The verdicts for one profile's target (its lease table) and one state folder."""

    def __init__(
        self,
        lease_kind: LeaseKind | None,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        machine: Machine | None = None,
        is_running: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.lease_kind = lease_kind
        self.state_dir = state_dir
        self.clock = clock
        self.machine = machine or this_machine()
        self.is_running = is_running

    # -- leases --------------------------------------------------------------------------

    def leases(self, prefix: str = "itest-") -> list[LeaseInfo] | None:
        """The lease table's leases under ``prefix``; [] without a table; None when it
        cannot be read (cannot tell)."""
        if self.lease_kind is None:
            return []
        try:
            return self.lease_kind.leases(prefix)
        except Exception:
            return None

    def _lease_of(self, folder: RunFolder) -> tuple[bool, LeaseInfo | None]:
        """(readable, the lease of the folder's run and shard): one read by key."""
        if self.lease_kind is None:
            return True, None
        try:
            return True, self.lease_kind.lease(lease_marker(folder.run_id, folder.shard))
        except Exception:
            return False, None

    def _lease_alive(self, lease: LeaseInfo) -> str | None:
        """Why the lease keeps its run alive, or None when it does not."""
        if lease_alive(lease, self.clock(), self.machine, self.is_running):
            until = time.strftime("%H:%M:%S", time.gmtime(lease.expires_at))
            return f"lease held by {lease.holder} until {until} UTC"
        return None

    # -- one folder --------------------------------------------------------------------

    def claim_dead(self, folder: RunFolder) -> Claim | None:
        """The folder's locks, held — when the folder's run part is dead: no live process
        holds a lock in it and its shard's lease (if any) is not alive. None otherwise."""
        return self._judge(folder)[0]

    def verdict(self, folder: RunFolder) -> Verdict:
        claim, why = self._judge(folder)
        if claim is not None:
            claim.release()
        return Verdict(claim is None, why)

    def _judge(self, folder: RunFolder) -> tuple[Claim | None, str]:
        """(a claim on the folder when it is dead, else None; why, either way)."""
        fds = _claim_locks(folder)
        if fds is None:
            return None, "a process on this machine holds its lock"
        readable, lease = self._lease_of(folder)
        alive: str | None = None  # why it is alive, if it is
        if not readable:
            alive = "cannot read the lease table (cannot tell)"
        elif lease is not None:
            alive = self._lease_alive(lease)
        if alive is not None:
            for fd in fds:
                os.close(fd)
            return None, alive
        return Claim(folder, lease, fds), "no lock held, no live lease"

    # -- whole runs ---------------------------------------------------------------------

    def alive_parts(self, run_id: str) -> list[str]:
        """Every live part of ``run_id``, named: its folders here (each shard) and its
        shards' leases anywhere. Empty when the whole run is over."""
        parts = []
        for folder in run_folders(self.state_dir, run_id):
            verdict = self.verdict(folder)
            if verdict.alive:
                parts.append(f"{folder.name} ({verdict.why})")
        leases = self.leases(f"{run_id}-")
        if leases is None:
            parts.append(f"{run_id} (cannot read the lease table: cannot tell)")
        for lease in leases or []:
            why = self._lease_alive(lease)
            if why is not None and not any(p.startswith(lease.marker) for p in parts):
                parts.append(f"{lease.marker} ({why})")
        return parts

    def alive_runs(self) -> dict[str, str]:
        """run id -> why, for every run that has a live part here or a live lease anywhere
        (the sweeper skips them). A lease table that cannot be read raises: with no way to
        tell, nothing may be swept."""
        alive: dict[str, str] = {}
        for lease in self.lease_kind.leases() if self.lease_kind is not None else []:
            why = self._lease_alive(lease)
            if why is not None:
                alive.setdefault(lease.run_id, why)
        for folder in run_folders(self.state_dir):
            if folder.run_id not in alive:
                fds = _claim_locks(folder)
                if fds is None:
                    alive[folder.run_id] = "a process on this machine holds its lock"
                else:
                    for fd in fds:
                        os.close(fd)
        return alive

    def dead_folders(
        self, *, run_id: str | None = None, base_url: str | None = None
    ) -> Iterator[Claim]:
        """Claims on the dead folders (of ``run_id``; of runs that targeted ``base_url``),
        one at a time: the caller releases each before the next is claimed."""
        for folder in run_folders(self.state_dir, run_id):
            # A folder with no owner file and no journal is a run that died between its
            # lock and its owner file: nothing to replay, only its lease and the folder.
            unowned = not folder.owner and not folder.journals()
            if base_url is not None and folder.owner.get("base_url") != base_url and not unowned:
                continue
            claim = self.claim_dead(folder)
            if claim is not None:
                yield claim
