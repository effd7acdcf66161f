"""Launching ``python -m sandbox`` as a subprocess and reading its exports, for the tests.

Shared by the ``sandbox`` session fixture (conftest.py) and the lifecycle tests that need
launches of their own. Reads stdout byte by byte until the ready marker, with a deadline.
The child's stderr goes to a file in the folder the caller names — a test's ``tmp_path`` (or
``tmp_path_factory``): a test run leaves nothing outside its temporary folders.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_MARKER = "# sandbox ready: pid "
EXPORT_NAMES = [
    "HARNESS_BASE_URL",
    "HARNESS_AWS_ENDPOINT_URL",
    "HARNESS_AWS_REGION",
    "HARNESS_ENVIRONMENT",
    "HARNESS_USERS_TABLE",
    "HARNESS_TOKENS_TABLE",
    "HARNESS_NOTIFICATIONS_TABLE",
    "HARNESS_EVENTS_TOPIC_ARN",
    "HARNESS_PROCESSOR_QUEUE_URL",
    "HARNESS_CONTRACTS_DIR",
    "HARNESS_LEASE_TABLE",
    "HARNESS_EVENTS_BUS",
    "HARNESS_KAFKA_BOOTSTRAP_SERVERS",
    "HARNESS_KAFKA_TOPIC",
    "HARNESS_KAFKA_CONSUMER_GROUP",
    "HARNESS_SCHEMA_REGISTRY_URL",
    "HARNESS_LOG_GROUPS",
]


@dataclass
class LaunchedSandbox:
    """A running ``python -m sandbox`` subprocess and what it printed."""

    proc: subprocess.Popen[bytes]
    exports: dict[str, str]
    export_order: list[str]
    ready_line: str
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.exports["HARNESS_BASE_URL"]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def start_process(args: list[str], log_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the sandbox with ``args``; its stderr goes to a new file in ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"sandbox-stderr-{time.monotonic_ns()}.log"
    with path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.sandbox", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
        )
    return proc, path


def read_until_ready(
    proc: subprocess.Popen[bytes], deadline_s: float = 30.0
) -> tuple[list[str], str | None]:
    """stdout lines up to and including the ready marker (None if the process ended first).

    Byte by byte from the unbuffered pipe: a buffered readline would pull later lines into a
    Python buffer where select() cannot see them, and the wait would hang.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    lines: list[str] = []
    current = bytearray()
    deadline = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            byte = os.read(fd, 1)
            if not byte:
                return lines, None
            if byte != b"\n":
                current += byte
                continue
            lines.append(current.decode())
            current.clear()
            if lines[-1].startswith(READY_MARKER):
                return lines, lines[-1]
    raise TimeoutError(f"sandbox not ready within {deadline_s}s; stdout so far: {lines}")


def parse_exports(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    exports: dict[str, str] = {}
    order: list[str] = []
    for line in lines:
        if not line.startswith("export "):
            continue
        (assignment,) = shlex.split(line[len("export ") :])
        key, _, value = assignment.partition("=")
        exports[key] = value
        order.append(key)
    return exports, order


def launch(args: list[str], log_dir: Path, deadline_s: float = 30.0) -> LaunchedSandbox:
    proc, stderr_path = start_process(args, log_dir)
    try:
        lines, ready = read_until_ready(proc, deadline_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if ready is None:
        proc.wait(10)
        raise RuntimeError(
            f"sandbox exited {proc.returncode} before ready: {stderr_path.read_text()}"
        )
    exports, order = parse_exports(lines)
    return LaunchedSandbox(proc, exports, order, ready, stderr_path, lines)
