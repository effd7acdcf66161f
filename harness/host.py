"""Who this process is on this machine: host name, kernel boot, process-id namespace.

A lease records its holder by these facts so that another process can tell, exactly, when it
shares the holder's kernel and process ids (the same boot id and the same pid namespace): only
then is "that pid no longer exists" a proof that the holder is gone. A host name proves
nothing (containers and UTS namespaces on one kernel each have their own), and a pid means
nothing across pid namespaces. Pure reads of ``/proc``; "" and 0 where there is none.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Machine:
    host: str
    #: The kernel's boot id (``/proc/sys/kernel/random/boot_id``): one per running kernel.
    boot: str
    #: The inode of this process's pid namespace (``/proc/self/ns/pid``).
    pidns: int

    def shares_pids_with(self, boot: str, pidns: int) -> bool:
        """True when a pid recorded with ``boot`` and ``pidns`` means the same process here."""
        return bool(self.boot) and boot == self.boot and bool(pidns) and pidns == self.pidns


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as source:
            return source.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def this_machine() -> Machine:
    return Machine(host=socket.gethostname(), boot=_boot_id(), pidns=_pid_namespace())


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a process in this pid namespace (signal 0: nothing is sent)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
