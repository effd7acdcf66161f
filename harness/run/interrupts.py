"""Stop requests: what Ctrl-C, SIGTERM and a controller's forwarded stop mean to a run process.

Owns the signal handlers of every harness process (the controller and each xdist worker) and
the one rule they keep:

- The **first** stop request — SIGINT (Ctrl-C), SIGTERM (a CI runner cancelling the job) or
  SIGUSR1 (a controller passing its own stop on to its local workers) — is recorded at once,
  in the handler, so nothing later can lose it (a second Ctrl-C that lands inside pytest's own
  interrupt handling once made a report say ``passed``). While tests run, it ends them
  (``KeyboardInterrupt``: pytest's own path to teardown and cleanup). Once the process is in
  its end sequence (:meth:`Stop.finishing`), it raises only inside a :meth:`Stop.cuttable`
  block — a wait or a check that may be cut short — and never inside cleanup.
- A **second** SIGINT or SIGTERM abandons: the process calls its abandon callback (which says
  what is left and writes the report) and exits 130 at once. A forwarded SIGUSR1 never
  abandons: it only starts a stop when nothing has.

A controller passes its first stop on to its own xdist workers (SIGUSR1 to each child whose
pid its journal folder's lock files name), so SIGTERM to the controller alone still reaches
every worker's cleanup.

The kernel may hand a signal sent to a process to any of its threads (an xdist worker's
execnet receiver thread, say), and Python runs handlers only in the main thread, at its next
bytecode: a main thread asleep in a test's ``time.sleep(120)`` would not hear a Ctrl-C for two
minutes. So the handlers come with a relay: the interpreter's wakeup fd
(``signal.set_wakeup_fd``) gets a byte for every signal, whichever thread took it, and a relay
thread (which blocks every signal itself) answers each by kicking the main thread with a
thread-directed SIGUSR2, whose handler does nothing — the kick only interrupts the blocking
call, and the pending handlers run (that no-op stays after the handlers go back, so a late
kick is never SIGUSR2's default, terminate). It never touches the environment.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_STATUS = 130
_USER_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORWARDED = signal.SIGUSR1
#: Sent by the relay to the main thread alone, to interrupt what it blocks in (no-op handler).
KICK = signal.SIGUSR2


class Stop:
    """This process's stop state (one per process: :data:`STOP`)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        #: A stop arrived during the end sequence: its waits are cut short.
        self.cut = False
        self.abandoned = False
        self._finishing = False
        self._cuttable = 0
        self._abandon: Callable[[], None] = lambda: None
        self._on_first: Callable[[], None] = lambda: None
        self._installed = False
        self._previous: dict[int, Any] = {}
        self._relay_fds: tuple[int, int] | None = None
        self._previous_wakeup = -1
        #: How many callers installed the handlers (the CLI, then the plugin in it).
        self._depth = 0
        #: The exit status the final report holds, once it is written: a later stop exits so.
        self.settled: int | None = None
        self._relay_thread: threading.Thread | None = None
        self._atexit_registered = False

    def install(
        self,
        *,
        abandon: Callable[[], None] | None = None,
        on_first: Callable[[], None] | None = None,
    ) -> None:
        """Take SIGINT, SIGTERM and SIGUSR1 (main thread only; elsewhere a no-op)."""
        if abandon is not None:
            self._abandon = abandon
        if on_first is not None:
            self._on_first = on_first
        if threading.current_thread() is not threading.main_thread():
            return
        self._depth += 1
        if self._installed:
            return
        for signum in (*_USER_SIGNALS, FORWARDED):
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous[KICK] = signal.signal(KICK, _ignore)
        self._start_relay()
        self._installed = True

    def _start_relay(self) -> None:
        read, write = os.pipe()
        os.set_blocking(write, False)
        try:
            self._previous_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread of the main interpreter
            os.close(read)
            os.close(write)
            return
        self._relay_fds = (read, write)
        main = threading.main_thread().ident
        self._relay_thread = threading.Thread(
            target=_relay, args=(read, main), name="harness-signal-relay", daemon=True
        )
        self._relay_thread.start()

    def _stop_relay(self) -> None:
        """End the relay and wait for it (a kick sent after SIGUSR2 got its default action
        back would kill the process: so the no-op handler is never swapped for that default,
        see :meth:`uninstall`)."""
        if self._relay_fds is None:
            return
        _read, write = self._relay_fds
        self._relay_fds = None
        try:
            current = signal.set_wakeup_fd(self._previous_wakeup)
        except OSError:  # that one's owner closed it already (given back out of order)
            current = signal.set_wakeup_fd(-1)
        if current != write:  # another installer's since: theirs stays until they give it back
            signal.set_wakeup_fd(current)
        with contextlib.suppress(OSError):
            os.write(write, bytes([_RELAY_END]))  # the relay reads it and ends
        if self._relay_thread is not None:
            self._relay_thread.join(timeout=2)
            self._relay_thread = None
        with contextlib.suppress(OSError):
            os.close(write)

    def settle(self, status: int) -> None:
        """The final report is written with ``status``: from now on a stop only ends the
        process with that status (a second Ctrl-C landing after the report can no longer
        make the exit status contradict it) — also in the interpreter's last moments, when
        Python gives signals back to their defaults: from ``atexit`` on they are ignored."""
        self.settled = status
        if not self._atexit_registered:
            atexit.register(self._ignore_stops_at_exit)
            self._atexit_registered = True

    def _ignore_stops_at_exit(self) -> None:
        if self.settled is None or threading.current_thread() is not threading.main_thread():
            return
        for signum in (*_USER_SIGNALS, FORWARDED):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_IGN)

    def uninstall(self, *, keep_settled: bool = False) -> None:
        """Give the signals back to whoever had them — once the last caller that installed
        them is done, and, with ``keep_settled``, not once the process is settled (its last
        moments still end as its report says)."""
        if not self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._depth -= 1
        if self._depth > 0 or (keep_settled and self.settled is not None):
            return
        self._stop_relay()
        for signum, handler in self._previous.items():
            if signum == KICK and handler in (signal.SIG_DFL, None):
                # A kick still on its way (a relay slow to end under load) must never meet
                # SIGUSR2's default action, which kills the process: the no-op stays.
                continue
            signal.signal(signum, handler)
        self._previous.clear()
        self._installed = False

    def reset(self) -> None:
        """Forget the last run's stop (a new run in the same process: pytester's in-process
        runs), keeping the handlers as they are."""
        self.requested, self.signal_name = False, ""
        self.cut = self.abandoned = self._finishing = False
        self._cuttable = 0
        self.settled = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.settled is not None:
            os._exit(self.settled)  # the report is written: end as it says, nothing left to do
        if self.requested:
            if signum == FORWARDED or self.abandoned:
                return  # a pass-on never abandons; after abandoning, nothing more to do
            self.abandoned = True
            self._abandon()
            os._exit(EXIT_STATUS)
        self.requested, self.signal_name = True, name
        self.cut = self._finishing
        with contextlib.suppress(Exception):
            self._on_first()
        if not self._finishing or self._cuttable:
            raise KeyboardInterrupt(f"signal {name}")

    def finishing(self) -> None:
        """The end sequence began: a first stop no longer raises outside cuttable blocks."""
        self._finishing = True

    @property
    def in_end_sequence(self) -> bool:
        return self._finishing

    @contextlib.contextmanager
    def cuttable(self) -> Iterator[None]:
        """A wait the first stop may cut short: skipped when a stop arrived during the end
        sequence already, ended when one arrives inside. A stop that ended the tests cuts
        nothing here: the end sequence after it is cleanup. The caller goes on either way."""
        if self.cut:
            raise Cut()
        self._cuttable += 1
        try:
            yield
        except KeyboardInterrupt:
            raise Cut() from None
        finally:
            self._cuttable -= 1


#: Not a signal number: tells the relay to end.
_RELAY_END = 0


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The kick's handler: nothing — being interrupted was the point."""


def _relay(read: int, main: int | None) -> None:
    """For every stop signal the process took (in whichever thread), interrupt the main
    thread so its Python handler runs now. Blocks every signal itself, so the kernel never
    picks this thread to take one."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    stops = {int(s) for s in (*_USER_SIGNALS, FORWARDED)}
    while True:
        try:
            data = os.read(read, 64)
        except OSError:
            return
        if not data or _RELAY_END in data:
            with contextlib.suppress(OSError):
                os.close(read)
            return
        if main is not None and stops.intersection(data):
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pthread_kill(main, KICK)


class Cut(Exception):
    """A cuttable step was cut short (or skipped) by a stop request."""


#: This process's stop state.
STOP = Stop()


def forward_to_workers(folder: Path) -> list[int]:
    """Pass a stop on to this process's own xdist workers: SIGUSR1 to every child of this
    process whose pid a lock file in ``folder`` names (a live worker holds its lock and wrote
    its pid there). A pid that is not our child is never signalled. Returns the pids."""
    from harness.cleanup.liveness import lock_holder_pids

    me = os.getpid()
    sent = []
    for pid in lock_holder_pids(folder).values():
        if pid != me and _parent_of(pid) == me:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, FORWARDED)
                sent.append(pid)
    return sent


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def say(message: str) -> None:
    """One line to stderr that a closed or broken stream cannot turn into an error."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
