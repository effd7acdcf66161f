"""Shared helpers of the benchmarks: a sandbox of their own, pytest subprocesses, figures.

Every benchmark starts what it measures against and stops it (no server outlives a script),
sends bounded numbers of requests over loopback only, and prints ``name: value`` lines that
``bench/run_all.py`` collects. Figures, never assertions.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cli.main import UNUSED_PLUGINS
from harness.run.local_sandbox import LocalSandbox

REPO = Path(__file__).resolve().parents[1]
#: The harness plugin comes from its entry point; the reference adapter's fixtures by name.
PLUGINS = ["-p", "fixtures.users"]
#: Plugins the suites do not use, off in measured runs exactly as `harness run` and the
#: project's pytest.ini switch them off (faker's own plugin; hypothesis is dev-only).
NO_DEV_PLUGINS = list(UNUSED_PLUGINS)


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return os.getloadavg()[0]


def emit(name: str, value: float | int | str, fmt: str = "") -> None:
    text = format(value, fmt) if fmt and not isinstance(value, str) else str(value)
    print(f"{name}: {text}", flush=True)


def note(message: str) -> None:
    """Progress for a person watching; stderr, so it never mixes with the figures."""
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


@contextmanager
def sandbox(label: str, extra_args: list[str] | None = None) -> Iterator[LocalSandbox]:
    """A fresh sandbox for one benchmark, always stopped."""
    log = Path(tempfile.gettempdir()) / f"env-harness-bench-{label}-{os.getpid()}.log"
    box = LocalSandbox.start(log, extra_args)
    try:
        yield box
    finally:
        box.stop()


def harness_environ(exports: dict[str, str], state_dir: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` without any other target, plus the sandbox's exports."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    environ.update(exports)
    environ["HARNESS_STATE_DIR"] = str(state_dir)
    # The repository's profiles (the reference adapter's kinds) and its fixtures package,
    # from whatever folder a measured run starts in.
    environ["HARNESS_CONFIG"] = str(REPO / "environments.toml")
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    environ.update(extra)
    return environ


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    #: user + system CPU of the command and the children it waited for (not a sandbox)
    cpu_seconds: float = 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> Timed:
    cpu_before = _children_cpu()  # one command at a time: the delta is this command's
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - started
    return Timed(seconds, done.returncode, done.stdout, done.stderr, _children_cpu() - cpu_before)


def require_ok(timed: Timed, what: str) -> Timed:
    if timed.returncode != 0:
        tail = "\n".join((timed.stdout + timed.stderr).splitlines()[-40:])
        raise RuntimeError(f"{what} exited {timed.returncode}:\n{tail}")
    return timed


def median(values: list[float]) -> float:
    return statistics.median(values)


def read_report(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def write_suite(directory: Path, files: dict[str, str]) -> Path:
    """A throw-away test directory with its own (empty) pytest.ini, so the project's
    ``pytest.ini`` and ``conftest.py`` never leak into a measured run."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory
