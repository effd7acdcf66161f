"""A Java child process that cannot outlive the sandbox, and the small helpers around it.

Owns: finding ``java`` (one clear line when it is missing), free loopback ports, spawning a
JVM in its own session with ``PR_SET_PDEATHSIG`` (the kernel sends it SIGTERM when the
sandbox dies, even by SIGKILL), its output in a log file (never a pipe nobody drains), and
stopping it: SIGTERM, a deadline, then SIGKILL. Also the sweep of working folders that a
killed sandbox could not remove, and each program's class-data-sharing archive: a training
run (when the jars are fetched) writes one at exit into its working folder, moved next to the
jars once complete; every later run maps it instead of loading and verifying thousands of
classes again (about half of the broker's start). Must never leave a JVM running once
``stop()`` returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger("sandbox.kafka")

PR_SET_PDEATHSIG = 1
OWNER_FILE = "owner.pid"
INSTALL_JAVA = "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"


class JavaError(RuntimeError):
    """A Java child could not be started; the message is one line for the user."""


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise JavaError(f"`java` is not on PATH: {INSTALL_JAVA}")
    return java


def free_port(host: str) -> int:
    """A port that was free a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _bind_to(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: SIGTERM when the parent dies; give up at once if it already has.

    prctl is looked up here, in the parent: between fork and exec the child may only call
    it (loading a library there could wait forever on a lock another thread held).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def bind() -> None:  # runs in the child between fork and exec
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return bind


def make_workdir(kind: str) -> Path:
    """A fresh temporary folder for one JVM, stamped with this process's pid."""
    sweep_workdirs(kind)
    path = Path(tempfile.mkdtemp(prefix=f"sandbox-{kind}-"))
    (path / OWNER_FILE).write_text(str(os.getpid()))
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdlines_mentioning(text: str) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if text.encode() in (proc / "cmdline").read_bytes():
                return True
    return False


def sweep_workdirs(kind: str) -> None:
    """Remove working folders whose sandbox is gone and that no process still uses.

    A sandbox killed outright cannot remove its folders; its JVMs die with it (PDEATHSIG),
    so the next sandbox to start removes what they left.
    """
    for path in Path(tempfile.gettempdir()).glob(f"sandbox-{kind}-*"):
        try:
            owner = int((path / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner) or _cmdlines_mentioning(str(path)):
            continue
        log.info("removing %s, left by sandbox pid %s", path, owner)
        shutil.rmtree(path, ignore_errors=True)


def _java_key() -> str:
    """Names the JDK an archive was made by (an archive only fits the JDK that wrote it)."""
    java = Path(java_binary()).resolve()
    try:
        stamp = f"{java}:{java.stat().st_mtime_ns}"
    except OSError:
        stamp = str(java)
    return hashlib.sha256(stamp.encode()).hexdigest()[:10]


class ClassArchive:
    """The class-data-sharing archive of one Java program with one classpath."""

    def __init__(self, name: str, folder: Path | None, write: bool = False) -> None:
        self.name = name
        self.path = folder / f"{name}-{_java_key()}.jsa" if folder is not None else None
        self.write = write
        self.pending: Path | None = None

    def exists(self) -> bool:
        return self.path is not None and self.path.exists()

    def options(self, workdir: Path) -> list[str]:
        """Map the archive if there is one; in a training run, write it at exit instead."""
        if self.path is None:
            return []
        if self.write:
            self.pending = workdir / f"{self.name}.jsa"
            return [f"-XX:ArchiveClassesAtExit={self.pending}"]
        if self.path.exists():
            return [f"-XX:SharedArchiveFile={self.path}"]
        return []

    def keep(self) -> None:
        """After a training run exited: move the archive it wrote next to the jars."""
        pending, self.pending = self.pending, None
        if pending is None or self.path is None or not pending.exists():
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(pending, self.path)
            log.info("saved the %s class archive: %s", self.name, self.path)


class JavaProcess:
    """One JVM child: spawned with ``start()``, always ended by ``stop()``."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, archive: ClassArchive | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.archive = archive
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        sharing = self.archive.options(self.workdir) if self.archive is not None else []
        self.proc = subprocess.Popen(
            [java_binary(), *sharing, *self.argv],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only the launcher, which stops it
            # in order; PDEATHSIG covers a launcher that is killed outright.
            start_new_session=True,
            preexec_fn=_bind_to(os.getpid()),
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, fallback: str) -> str:
        """One line saying why the JVM failed: its last error line, else ``fallback``."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        # The cause is the innermost exception with a message ("...Exception: Address already
        # in use"), more telling than the "ERROR Exiting ..." line logged after it.
        causes = [line.strip() for line in lines if re.search(r"(Exception|Error): \S", line)]
        if causes:
            return causes[-1][:400]
        for marker in ("ERROR", "Exception", "Error", "error"):
            found = [line.strip() for line in lines if marker in line]
            if found:
                return found[-1][:400]
        if self.proc is not None and self.proc.poll() is not None:
            return f"{fallback} (exit status {self.proc.returncode})"
        return fallback

    def request_stop(self) -> None:
        """SIGTERM without waiting (``stop`` then waits)."""
        if self.running():
            assert self.proc is not None
            self.proc.terminate()

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        killed = False
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s pid %s ignored SIGTERM for %.0fs; killing it", self.name, proc.pid, timeout
                )
                killed = True
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if proc is not None and self.archive is not None and not killed:
            self.archive.keep()  # a JVM killed while writing it would leave half an archive


def run_java(
    argv: list[str], workdir: Path, timeout: float, archive: ClassArchive | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short Java command to completion (it too dies with the sandbox)."""
    started = time.monotonic()
    sharing = archive.options(workdir) if archive is not None else []
    try:
        done = subprocess.run(
            [java_binary(), *sharing, *argv],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            preexec_fn=_bind_to(os.getpid()),
        )
    except subprocess.TimeoutExpired:
        raise JavaError(f"`java {argv[-1]}` did not finish within {timeout:.0f}s") from None
    log.debug("java %s took %.2fs", argv[-1], time.monotonic() - started)
    if archive is not None:
        archive.keep()
    return done
