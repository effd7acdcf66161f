"""The processes of a scenario: every process a command started, found while it runs, and
those still alive once it is over.

A command is started in a session of its own; its children (xdist workers, a sandbox and its
emulator, which starts a session of its own) are found by parentage in ``/proc``, polled
while the command runs, and also by the session id. A process is named by pid *and* start
time, so a recycled pid is never taken for a leftover. Owns only looking and, for leftovers
the driver itself started, ending them by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass

ProcessKey = tuple[int, int]  # (pid, start time in clock ticks)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    session: int
    start: int
    state: str
    command: str

    @property
    def key(self) -> ProcessKey:
        return (self.pid, self.start)


def read_proc(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            text = stat.read()
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # after the command: state, ppid, pgrp, session, ... starttime is field 22 (index 19 here)
    return ProcInfo(
        pid=pid,
        ppid=int(fields[1]),
        session=int(fields[3]),
        start=int(fields[19]),
        state=fields[0],
        command=command[:200],
    )


def all_processes() -> list[ProcInfo]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_proc(int(entry))
            if info is not None:
                found.append(info)
    return found


def alive(key: ProcessKey) -> ProcInfo | None:
    """The process, if it still runs (a zombie has finished: its parent just has not
    reaped it)."""
    info = read_proc(key[0])
    if info is None or info.start != key[1] or info.state in ("Z", "X"):
        return None
    return info


class ProcessWatch:
    """Watches the family of the root processes added to it, from a thread, until stopped."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.seen: dict[ProcessKey, ProcInfo] = {}
        self.sessions: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="simulate-procwatch", daemon=True)
        self._thread.start()

    def add_root(self, pid: int) -> None:
        info = read_proc(pid)
        if info is not None:
            with self._lock:
                self.seen[info.key] = info
                self.sessions.add(info.session)

    def poll(self) -> None:
        processes = all_processes()
        with self._lock:
            live_pids = {key[0] for key in self.seen if alive(key) is not None}
            changed = True
            while changed:  # a whole new chain (child of a child) is found in one poll
                changed = False
                for info in processes:
                    if info.key in self.seen:
                        continue
                    if info.ppid in live_pids or info.session in self.sessions:
                        self.seen[info.key] = info
                        live_pids.add(info.pid)
                        changed = True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self.poll()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def alive(self) -> list[ProcInfo]:
        with self._lock:
            keys = list(self.seen)
        return [info for key in keys if (info := alive(key)) is not None]

    def wait_gone(self, grace: float) -> list[ProcInfo]:
        """Those still alive after ``grace`` seconds (polling on, so late children count)."""
        deadline = time.monotonic() + grace
        while True:
            self.poll()
            left = self.alive()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    def kill_all(self) -> None:
        """SIGKILL every watched process still alive (the driver started each of them)."""
        for info in self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, signal.SIGKILL)
