"""Starting and stopping the embedded sandbox as a child process.

The harness never imports ``sandbox`` (it is "somebody else's service"); it runs
``python -m sandbox``, reads the ``export HARNESS_*=…`` lines it prints until the ready
marker, and hands those values back. The child is bound to this process's life (Linux
parent-death signal) and stopped with SIGTERM, then SIGKILL, so no run leaves it orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_MARKER = "# sandbox ready"
START_TIMEOUT = 60.0
#: With ``--bus kafka``: two JVMs start (and, the first time, their jars are fetched).
KAFKA_START_TIMEOUT = 180.0


class SandboxError(Exception):
    """The sandbox could not be started; the message says why and where its log is."""


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

    def wait_ready(self, timeout: float | None = None) -> LocalSandbox:
        process, log_path = self.process, self.log_path
        timeout = self.start_timeout if timeout is None else timeout
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
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
