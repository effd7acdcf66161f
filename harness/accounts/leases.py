"""Who holds which pre-provisioned account: one holder at a time, across workers, runs and machines.

Owns leasing one account of a pool (:mod:`harness.accounts.spec`) to one process for as long
as it uses it, by one of two means — the same two signals the run's liveness authority trusts
(:mod:`harness.cleanup.liveness`), reused here:

- **The profile's** ``lease_table``: one item per account, ``Marker`` =
  ``account-lease:<store>:<name>``, ``Holder`` = ``host:pid``, ``Boot``/``PidNs`` (the holder's
  kernel and pid namespace), ``Run`` (who, for humans) and ``ExpiresAt``. It is taken with a
  conditional put — only when there is none or it lapsed — refreshed by its holder every
  third of its duration, and deleted, only while this process still holds it, on release. A
  lease whose holder provably shares this kernel and pid namespace and whose process is gone
  is dead at once (:func:`~harness.cleanup.liveness.lease_alive`) and taken over — only while
  that dead holder still has it; a holder elsewhere is alive until its lease lapses.
- **Without one**, an exclusive ``flock`` on ``<state>/accounts/<account>.lock``, which the
  kernel drops when the holder dies however it died: exact on one machine, for the runs that
  share the project's ``.harness``.

On a protected profile these lease items are the only thing the harness writes to the
target's AWS, and its clients let through nothing else
(:class:`~harness.safety.protect.AwsAllowance`). It never reads or writes an account itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from harness.accounts.spec import AccountEntry
from harness.cleanup.liveness import HeldLock, RunInUse, hold, lease_alive
from harness.host import Machine, pid_alive, this_machine
from harness.kinds.dynamo import is_condition_failed
from harness.kinds.lease import BOOT, EXPIRES, HOLDER, KEY, PIDNS, LeaseInfo, own_holder

#: Seconds an account lease lives without a refresh (a killed holder elsewhere frees its
#: account after at most this long; on this machine at once).
DURATION = 120.0
#: Who holds the lease, for humans (a worker's namespace, ``harness doctor``).
RUN = "Run"


@dataclass(frozen=True)
class Busy:
    """An account another live holder has; ``holder`` says who, and until when."""

    entry: AccountEntry
    holder: str


@dataclass
class Held:
    """An account this process holds until :meth:`release` (idempotent)."""

    entry: AccountEntry
    _release: Callable[[], None] = field(repr=False)
    #: Set when a refresh found the lease taken over (it had lapsed): the account may no
    #: longer be this process's alone.
    lost: threading.Event = field(default_factory=threading.Event, repr=False)

    def release(self) -> None:
        release, self._release = self._release, lambda: None
        release()


def _until(expires_at: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(expires_at))


class LocalLocks:
    """Accounts leased by an OS lock per account under ``folder`` (``<state>/accounts``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def lock_name(entry: AccountEntry) -> str:
        """A file name per account: readable, and distinct even where two names differ only
        in characters a file name cannot hold (``a/b`` and ``a_b``)."""
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{entry.store}-{entry.name}")[:80]
        digest = hashlib.sha256(f"{entry.store}:{entry.name}".encode()).hexdigest()[:10]
        return f"{readable}-{digest}"

    def take(self, entry: AccountEntry) -> Held | Busy:
        name = self.lock_name(entry)
        try:
            lock: HeldLock = hold(self.folder, name)
        except RunInUse:
            pid = ""
            with contextlib.suppress(OSError, IndexError):
                pid = (self.folder / f"{name}.lock").read_text().split()[0]
            return Busy(entry, f"a live process on this machine (pid {pid or '?'})")
        return Held(entry, lock.release)


class TableLeases:
    """Accounts leased through the profile's lease table (items of :data:`DURATION`)."""

    def __init__(
        self,
        aws: Any,
        table: str,
        run: str,
        *,
        duration: float = DURATION,
        clock: Callable[[], float] = time.time,
        machine: Machine | None = None,
        is_running: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.aws = aws
        self.table_name = table
        self.run = run
        self.duration = duration
        self.clock = clock
        self.machine = machine or this_machine()
        self.is_running = is_running

    def _item(self, entry: AccountEntry) -> dict[str, Any]:
        return {
            KEY: entry.lease_key,
            HOLDER: own_holder(),
            BOOT: self.machine.boot,
            PIDNS: self.machine.pidns,
            RUN: self.run,
            EXPIRES: int(self.clock() + self.duration),
        }

    def _put(self, table: Any, item: dict[str, Any], condition: str, values: dict) -> bool:
        """One conditional put; False when its condition did not hold."""
        # DynamoDB refuses a name the expression does not use: only those it does
        names = {n: a for n, a in (("#k", KEY), ("#h", HOLDER), ("#e", EXPIRES)) if n in condition}
        try:
            table.put_item(
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failed(error):
                return False
            raise
        return True

    def take(self, entry: AccountEntry) -> Held | Busy:
        table = self.aws.table(self.table_name)
        item = self._item(entry)
        now = int(self.clock())
        free = "attribute_not_exists(#k) OR #e < :now"
        if self._put(table, item, free, {":now": now}):
            return self._held(entry)
        current = table.get_item(Key={KEY: entry.lease_key}, ConsistentRead=True).get("Item")
        if current is None:  # released between the two calls: try once more
            if self._put(table, item, free, {":now": now}):
                return self._held(entry)
            return Busy(entry, "another holder (it was taken just now)")
        info = _info(current)
        if lease_alive(info, self.clock(), self.machine, self.is_running):
            who = f" ({current.get(RUN)})" if current.get(RUN) else ""
            return Busy(entry, f"{info.holder}{who} until {_until(info.expires_at)}")
        # Its holder is gone (this machine, process dead) or it lapsed: take over exactly the
        # lease judged dead, never one another process took meanwhile.
        dead = {":old": str(current.get(HOLDER, "")), ":olde": current.get(EXPIRES, 0)}
        if self._put(table, item, "#h = :old AND #e = :olde", dead):
            return self._held(entry)
        return Busy(entry, "another holder (it took the dead holder's lease just now)")

    def _held(self, entry: AccountEntry) -> Held:
        # Clients of its own for the refresh thread (boto3 resources are not thread-safe),
        # built here, in this thread.
        twin = self.aws.sibling()
        refresh_table = twin.table(self.table_name)
        stop = threading.Event()
        held = Held(entry, lambda: None)

        def refresh() -> None:
            # A stop signal sent to the process must reach a thread that handles it, never
            # this one (it lives as long as the worker's session): it blocks them all.
            signal.pthread_sigmask(signal.SIG_BLOCK, _CATCHABLE)
            while not stop.wait(self.duration / 3):
                try:
                    item = self._item(entry)
                    mine = {":h": item[HOLDER]}
                    if not self._put(refresh_table, item, "#h = :h AND attribute_exists(#k)", mine):
                        held.lost.set()  # it lapsed and was taken over: stop claiming it
                        return
                except Exception:  # a missed refresh is retried next period
                    continue

        thread = threading.Thread(target=refresh, name="harness-account-lease", daemon=True)
        thread.start()

        def release() -> None:
            stop.set()
            thread.join(timeout=5)
            with contextlib.suppress(ClientError):  # gone or taken over: not ours to delete
                self.aws.table(self.table_name).delete_item(
                    Key={KEY: entry.lease_key},
                    ConditionExpression="#h = :h",
                    ExpressionAttributeNames={"#h": HOLDER},
                    ExpressionAttributeValues={":h": own_holder()},
                )

        held._release = release
        return held


#: Every signal a thread can block (SIGKILL and SIGSTOP cannot be).
_CATCHABLE = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}


def _info(item: dict[str, Any]) -> LeaseInfo:
    host, _, pid = str(item.get(HOLDER, "")).rpartition(":")
    return LeaseInfo(
        run_id=str(item.get(RUN, "")),
        marker=str(item.get(KEY, "")),
        host=host,
        pid=int(pid) if pid.isdigit() else 0,
        expires_at=float(item.get(EXPIRES, 0)),
        boot=str(item.get(BOOT, "")),
        pidns=int(item.get(PIDNS, 0) or 0),
    )
