"""Starting and stopping the embedded sandbox as a child process.

The harness never imports ``sandbox`` (it is "somebody else's service"); it runs
``python -m harness.sandbox``, reads the ``export HARNESS_*=…`` lines it prints until the
ready marker, and hands those values back; while it waits, it can relay the progress lines
the sandbox writes to its log (``sandbox progress: …``) to the user. The child is bound to
this process's life (Linux parent-death signal) and stopped with SIGTERM, then SIGKILL, so no
run leaves it orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import STARTED_SANDBOX_VARIABLE

READY_MARKER = "# sandbox ready"
#: What the sandbox writes to stderr (its log, here) while it starts, one step a line.
PROGRESS_PREFIX = "sandbox progress: "
START_TIMEOUT = 60.0
#: With ``--bus kafka``: two JVMs start (and, the first time, their jars are fetched).
KAFKA_START_TIMEOUT = 180.0

Relay = Callable[[str], None]


class SandboxError(Exception):
    """The sandbox could not be started; the message says why and where its log is."""


class ProgressTail:
    """Follows a sandbox's log file and hands each progress line, without its prefix, to
    ``relay``; everything else stays in the log only. ``poll()`` reads what was added."""

    def __init__(self, path: Path, relay: Relay) -> None:
        self.path = path
        self.relay = relay
        self.offset = 0
        self.partial = b""

    def poll(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        except OSError:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        prefix = PROGRESS_PREFIX.encode()
        for line in lines:
            if line.startswith(prefix):
                self.relay(line[len(prefix) :].decode("utf-8", "replace").rstrip("\r"))

    @contextlib.contextmanager
    def following(self, every: float = 0.1) -> Iterator[None]:
        """Poll in a thread while the body runs (it may block on the child's stdout), and
        once more at the end: a line written just before the ready marker is never lost."""
        done = threading.Event()

        def follow() -> None:
            while not done.wait(every):
                self.poll()

        thread = threading.Thread(target=follow, name="sandbox-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.poll()


def _bind_to_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def parse_exports(lines: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            parts = shlex.split(value)
            values[name.strip()] = parts[0] if parts else ""
    return values


@dataclass
class LocalSandbox:
    process: subprocess.Popen[str]
    exports: dict[str, str]
    log_path: Path
    _drain: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls, log_path: Path, extra_args: list[str] | None = None, timeout: float | None = None
    ) -> LocalSandbox:
        return cls.spawn(log_path, extra_args).wait_ready(timeout)

    @classmethod
    def spawn(cls, log_path: Path, extra_args: list[str] | None = None) -> PendingSandbox:
        """Start the child and return at once; ``wait_ready`` reads its exports. Lets a
        caller overlap the sandbox's start-up with its own (``harness run`` does)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("w", encoding="utf-8")
        command = [sys.executable, "-m", "harness.sandbox", "--quiet", *(extra_args or [])]
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                preexec_fn=_bind_to_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            log.close()
        kafka = "kafka" in (extra_args or [])
        return PendingSandbox(process, log_path, KAFKA_START_TIMEOUT if kafka else START_TIMEOUT)

    def _drain_stdout(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class PendingSandbox:
    """A sandbox child that may not be ready yet."""

    process: subprocess.Popen[str]
    log_path: Path
    start_timeout: float = START_TIMEOUT

    def stop(self) -> None:
        _stop(self.process)

    def wait_ready(
        self, timeout: float | None = None, progress: Relay | None = None
    ) -> LocalSandbox:
        """Read the exports up to the ready marker; ``progress`` is handed each progress line
        of the start (the log keeps them too)."""
        process, log_path = self.process, self.log_path
        timeout = self.start_timeout if timeout is None else timeout
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        following = (
            ProgressTail(log_path, progress).following()
            if progress is not None
            else contextlib.nullcontext()
        )
        try:
            with following:
                for line in process.stdout:
                    lines.append(line.rstrip("\n"))
                    if line.startswith(READY_MARKER):
                        break
        finally:
            timer.cancel()
        if not lines or not lines[-1].startswith(READY_MARKER):
            code = process.poll()
            _stop(process)
            why = "timed out" if time.monotonic() >= deadline else f"exited with {code}"
            tail = "".join(log_path.read_text(encoding="utf-8").splitlines(True)[-15:])
            raise SandboxError(f"the sandbox did not start ({why}); its log is {log_path}:\n{tail}")
        sandbox = LocalSandbox(process=process, exports=parse_exports(lines), log_path=log_path)
        sandbox._drain = threading.Thread(target=sandbox._drain_stdout, daemon=True)
        sandbox._drain.start()
        return sandbox


def _stop(process: subprocess.Popen[str], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        with contextlib.suppress(Exception):
            process.stdout.close()


def apply_exports(exports: dict[str, str], environ: os._Environ[str] | dict[str, str]) -> None:
    for name, value in exports.items():
        environ[name] = value


def mark_started_sandbox(
    exports: dict[str, str], environ: os._Environ[str] | dict[str, str]
) -> None:
    """Apply the exports of a sandbox the harness started itself, and say so: the profile's
    sources then read "sandbox" rather than a variable (and are no stale override)."""
    apply_exports(exports, environ)
    environ[STARTED_SANDBOX_VARIABLE] = " ".join(sorted(exports))


DETACHED_FILE = "detached.json"


def detached_path(state_dir: Path) -> Path:
    return state_dir / "sandbox" / DETACHED_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_detached(state_dir: Path) -> dict[str, Any] | None:
    """The detached sandbox recorded under ``state_dir``, if its process still lives."""
    path = detached_path(state_dir)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if _alive(pid) else None


def start_detached(
    state_dir: Path, extra_args: list[str] | None = None, timeout: float = START_TIMEOUT
) -> dict[str, Any]:
    """Start the sandbox bound to nothing — its own session, output to files, no parent-death
    signal — so it outlives this command; return once it is ready. The record (pid, exports,
    log) is written to ``<state>/sandbox/detached.json`` for :func:`stop_detached`."""
    folder = (state_dir / "sandbox").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out_path, log_path = folder / f"detached-{stamp}.out", folder / f"detached-{stamp}.log"
    command = [sys.executable, "-m", "harness.sandbox", "--quiet", *(extra_args or [])]
    with out_path.open("w", encoding="utf-8") as out, log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not in the shell's process group: Ctrl-C there spares it
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = out_path.read_text(encoding="utf-8").splitlines()
        if any(line.startswith(READY_MARKER) for line in lines):
            break
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if not any(line.startswith(READY_MARKER) for line in lines):
        code = process.poll()
        _kill_group(process.pid)
        why = "timed out" if code is None else f"exited with {code}"
        raise SandboxError(f"the sandbox did not start ({why}); its log is {log_path}")
    record = {
        "pid": process.pid,
        "exports": parse_exports(lines),
        "log": str(log_path),
        "started_at": time.time(),
    }
    detached_path(state_dir).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def stop_detached(state_dir: Path, grace: float = 10.0) -> dict[str, Any] | None:
    """Stop the detached sandbox: SIGTERM (it stops what it started), then SIGKILL to its
    whole process group, so no emulator is left behind. None when none was running."""
    path = detached_path(state_dir)
    record = running_detached(state_dir)
    if record is not None:
        pid = int(record["pid"])
        # the emulator runs in a session of its own (and dies with its parent): found by
        # parentage, not by process group, so it can be waited for and killed too
        family = [pid, *_descendants(pid)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) and not _reaped(p) for p in family):
            time.sleep(0.1)
        _kill_group(pid)
        for member in family:
            if _alive(member) and not _reaped(member):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return record


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with (
                    contextlib.suppress(OSError, IndexError, ValueError),
                    open(f"/proc/{entry}/stat", encoding="utf-8") as stat,
                ):
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def _reaped(pid: int) -> bool:
    """True once ``pid`` is a zombie or gone (a child of this process is reaped here)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
