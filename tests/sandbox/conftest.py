"""Fixtures for the sandbox's tests.

``service_env`` (unit): the service's environment variables plus moto's in-process
``mock_aws`` with the resources provisioned, for Chalice's test client.
``sandbox`` (integration, session-scoped): one real ``python -m sandbox`` subprocess with its
exports parsed, always stopped (SIGINT, then SIGKILL after a deadline).
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO / "sandbox" / "service"
for _path in (str(REPO), str(SERVICE_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

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
]

SERVICE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "ENVIRONMENT_NAME": "unit",
    "USERS_TABLE_NAME": "sandbox-users",
    "TOKEN_TABLE_NAME": "sandbox-tokens",
    "NOTIFICATIONS_TABLE_NAME": "sandbox-notifications",
    "NOTIFICATIONS_QUEUE_NAME": "sandbox-notifications-processor",
}


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import boto3
    from chalicelib import settings
    from moto import mock_aws

    from sandbox.provision import ResourceNames, provision

    for key, value in SERVICE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ENDPOINT_URL", raising=False)
    monkeypatch.delenv("CONTRACTS_DIR", raising=False)
    with mock_aws():
        done = provision(boto3.session.Session(region_name="us-east-1"), None, ResourceNames())
        monkeypatch.setenv("EVENTS_TOPIC_ARN", done.events_topic_arn)
        settings.reset()
        try:
            yield {
                **SERVICE_ENV,
                "EVENTS_TOPIC_ARN": done.events_topic_arn,
                "QUEUE_URL": done.processor_queue_url,
            }
        finally:
            settings.reset()


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


def start_process(args: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
    fd, name = tempfile.mkstemp(prefix="sandbox-stderr-", suffix=".log")
    with os.fdopen(fd, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
        )
    return proc, Path(name)


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
        (assignment,) = shlex.split(line[len("export "):])
        key, _, value = assignment.partition("=")
        exports[key] = value
        order.append(key)
    return exports, order


def launch(args: list[str]) -> LaunchedSandbox:
    proc, stderr_path = start_process(args)
    try:
        lines, ready = read_until_ready(proc)
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


@pytest.fixture(scope="session")
def sandbox() -> Iterator[LaunchedSandbox]:
    launched = launch(["--quiet"])
    try:
        yield launched
    finally:
        launched.stop()
