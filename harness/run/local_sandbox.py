"""Starting and stopping the embedded sandbox as a child process.

The harness never imports ``sandbox`` (it is "somebody else's service"); it runs
``python -m harness.sandbox``, reads the ``export HARNESS_*=…`` lines it prints until the
ready marker, and hands those values back; while it waits, it can relay the progress lines
the sandbox writes to its log (``sandbox progress: …``) to the user. The child is bound to
this process's life (Linux parent-death signal) and stopped with SIGTERM, then SIGKILL, so no
run leaves it orphaned.

Also owns the detached sandbox (``harness env up --detach``): one per state folder, started
and stopped under that folder's lock (``<state>/sandbox/detached.lock``), recorded in
``detached.json`` from the moment it is spawned; a second start reuses it only when it asks
for the same options, and never stops a process that is not the one recorded there.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import STARTED_SANDBOX_VARIABLE, ConfigError
from harness.host import pid_alive

READY_MARKER = "# sandbox ready"
#: ``python -P``: the current folder is not put first on the sandbox's ``sys.path``, so a
#: project that has a ``harness/`` folder of its own cannot shadow the installed package.
ISOLATED = ["-P"]
#: What the sandbox writes to stderr (its log, here) while it starts, one step a line.
PROGRESS_PREFIX = "sandbox progress: "
START_TIMEOUT = 60.0
#: With ``--bus kafka``: two JVMs start (and, the first time, their jars are fetched).
KAFKA_START_TIMEOUT = 180.0

Relay = Callable[[str], None]


class SandboxError(Exception):
    """The sandbox could not be started; the message says why and where its log is."""


class SandboxMismatch(ConfigError):
    """A detached sandbox already runs here, started with other options than those asked
    for (exit 8: the fix is to stop it first)."""


class SandboxUsageError(ConfigError):
    """The sandbox refused its options; the message is its own one line."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


#: The sandbox's front-command protocol (``sandbox/__main__.py``): the name its help and its
#: bad-option line give, and the status a bad option exits with.
PROG_VARIABLE = "SANDBOX_PROG"
USAGE_STATUS_VARIABLE = "SANDBOX_USAGE_STATUS"


def front_environ(prog: str, usage_status: int, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a sandbox started from a user's command line: its help and its one
    bad-option line name ``prog``, and a bad option exits ``usage_status``."""
    return {**environ, PROG_VARIABLE: prog, USAGE_STATUS_VARIABLE: str(usage_status)}


def start_timeout(extra_args: Sequence[str] | None) -> float:
    kafka = requested_options(extra_args or [])["--bus"] == "kafka"
    return KAFKA_START_TIMEOUT if kafka else START_TIMEOUT


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
        command = [
            sys.executable,
            *ISOLATED,
            "-m",
            "harness.sandbox",
            "--quiet",
            *(extra_args or []),
        ]
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
LOCK_FILE = "detached.lock"
#: How long a second ``env up``/``env down`` in the folder waits for a first one's start.
LOCK_WAIT = KAFKA_START_TIMEOUT + 30.0
#: Options that change only what the sandbox logs: a second ``env up`` may differ in them.
LOG_ONLY_OPTIONS = frozenset({"--quiet", "--log-file"})
DOWN = '`eval "$(harness env down)"`'


def detached_path(state_dir: Path) -> Path:
    return state_dir / "sandbox" / DETACHED_FILE


def _is_sandbox(pid: int) -> bool:
    """The recorded pid still runs the sandbox (not a process that reused the number after a
    reboot); where /proc cannot tell, a live pid is taken for it."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)
    return b"harness.sandbox" in command


def _read_record(state_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(detached_path(state_dir).read_text(encoding="utf-8"))
        int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None


def running_detached(state_dir: Path) -> dict[str, Any] | None:
    """The detached sandbox recorded under ``state_dir``, if its process still lives (its
    ``exports`` are empty while it starts)."""
    record = _read_record(state_dir)
    return record if record is not None and _is_sandbox(int(record["pid"])) else None


def requested_options(args: Sequence[str]) -> dict[str, str | bool]:
    """The sandbox options ``args`` ask for, by name (``--name value``, ``--name=value`` or a
    flag; the last one given wins, as in argparse). ``--bus`` is always there (its default,
    sns); options that only change the sandbox's logging are left out."""
    found: dict[str, str | bool] = {}
    index = 0
    while index < len(args):
        name, equals, value = args[index].partition("=")
        index += 1
        if not name.startswith("--"):
            found[name] = True  # the sandbox takes no positional argument: it refuses this
            continue
        if not equals and index < len(args) and not args[index].startswith("--"):
            value, equals = args[index], "="
            index += 1
        if name not in LOG_ONLY_OPTIONS:
            found[name] = value if equals else True
    found.setdefault("--bus", "sns")
    return found


def _running_options(record: Mapping[str, Any]) -> dict[str, str | bool]:
    options = requested_options([str(arg) for arg in record.get("args") or []])
    bus = (record.get("exports") or {}).get("HARNESS_EVENTS_BUS")
    if bus:  # what it runs on, whatever it was asked
        options["--bus"] = str(bus)
    return options


def option_mismatch(record: Mapping[str, Any], args: Sequence[str]) -> str | None:
    """None when the running sandbox is what ``args`` ask for, else one line saying how they
    differ and how to get the one asked for."""
    running, asked = _running_options(record), requested_options(args)
    differ = sorted(
        key for key in running.keys() | asked.keys() if running.get(key) != asked.get(key)
    )
    if not differ:
        return None

    def show(options: Mapping[str, str | bool]) -> str:
        return ", ".join(_option(key, options.get(key)) for key in differ)

    return (
        f"a detached sandbox already runs here (pid {record['pid']}: {show(running)}), not "
        f"the one asked for ({show(asked)}): stop it first with {DOWN}, then start again"
    )


def _option(name: str, value: str | bool | None) -> str:
    if value is None:
        return f"without {name}"
    return name if value is True else f"{name} {value}"


@contextlib.contextmanager
def detached_lock(
    state_dir: Path, waiting: Relay | None = None, timeout: float = LOCK_WAIT
) -> Iterator[None]:
    """The state folder's sandbox lock, held while a detached sandbox is looked up, started
    or stopped: two ``env up``/``env down`` in one folder take turns. ``waiting`` is told
    when another one holds it."""
    from filelock import FileLock, Timeout

    folder = state_dir / "sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting is not None:
            waiting(
                "another `harness env` command is starting or stopping the sandbox in this "
                "folder; waiting for it…"
            )
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise SandboxError(
                f"another `harness env` command in this folder has held {folder / LOCK_FILE} "
                f"for {timeout:.0f} s (a sandbox start that hangs?): stop that command, then "
                f"try again"
            ) from None
    try:
        yield
    finally:
        lock.release()


def ensure_detached(
    state_dir: Path,
    extra_args: Sequence[str] = (),
    *,
    say: Relay | None = None,
    progress: Relay | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """The folder's detached sandbox, started if none runs: ``(record, reused)``. Under the
    folder's lock, so concurrent calls start one sandbox. A running one is reused only when it
    runs with the options asked for; else :class:`SandboxMismatch`, and it is left as it is."""
    with detached_lock(state_dir, say):
        record = running_detached(state_dir)
        if record is not None and not record.get("exports"):
            # We hold the lock, so whoever spawned it is gone before it was ready.
            if say is not None:
                say(
                    f"stopping the detached sandbox whose start was cut short (pid {record['pid']})"
                )
            _stop_recorded(state_dir)
            record = None
        if record is not None:
            mismatch = option_mismatch(record, extra_args)
            if mismatch is not None:
                check_options(extra_args, environ)  # a bad option is named as such first
                raise SandboxMismatch(mismatch)
            return record, True
        return start_detached(state_dir, extra_args, progress=progress, environ=environ), False


def check_options(args: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
    """:class:`SandboxUsageError` with the sandbox's own one line when it would refuse
    ``args`` (it parses them with ``--check-options`` and starts nothing); a command line it
    takes returns quietly."""
    environ = dict(environ if environ is not None else os.environ)
    status = environ.setdefault(USAGE_STATUS_VARIABLE, "2")
    checked = subprocess.run(
        [sys.executable, *ISOLATED, "-m", "harness.sandbox", *args, "--check-options"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=environ,
        check=False,
    )
    if checked.returncode != 0:
        said = checked.stderr.strip().splitlines()
        raise SandboxUsageError(
            said[-1] if said else f"bad options: {list(args)}",
            int(status) if checked.returncode == int(status) else checked.returncode,
        )


def start_detached(
    state_dir: Path,
    extra_args: Sequence[str] | None = None,
    timeout: float | None = None,
    *,
    progress: Relay | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Start the sandbox bound to nothing — its own session, output to files, no parent-death
    signal — so it outlives this command; return once it is ready. The record (pid, options,
    log; the exports once ready) is written to ``<state>/sandbox/detached.json`` as soon as
    it is spawned, for :func:`stop_detached`; if this command fails or is interrupted while
    waiting, the sandbox is stopped and the record removed. Callers hold the folder's lock
    (:func:`ensure_detached`)."""
    args = list(extra_args or [])
    timeout = start_timeout(args) if timeout is None else timeout
    folder = (state_dir / "sandbox").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    out_path, log_path = folder / f"detached-{stamp}.out", folder / f"detached-{stamp}.log"
    command = [sys.executable, *ISOLATED, "-m", "harness.sandbox", "--quiet", *args]
    with out_path.open("w", encoding="utf-8") as out, log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not in the shell's process group: Ctrl-C there spares it
            close_fds=True,
            env=dict(environ) if environ is not None else None,
        )
    record: dict[str, Any] = {
        "pid": process.pid,
        "args": args,
        "exports": {},
        "log": str(log_path),
        "started_at": time.time(),
    }
    _write_record(state_dir, record)
    tail = ProgressTail(log_path, progress) if progress is not None else None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    try:
        while time.monotonic() < deadline:
            if tail is not None:
                tail.poll()
            lines = out_path.read_text(encoding="utf-8").splitlines()
            if any(line.startswith(READY_MARKER) for line in lines):
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        if tail is not None:
            tail.poll()
    except BaseException:
        _stop_recorded(state_dir)
        process.wait()
        raise
    if not any(line.startswith(READY_MARKER) for line in lines):
        code = process.poll()
        _stop_recorded(state_dir)
        process.wait()
        if (
            code is not None
            and environ is not None
            and str(code) == environ.get(USAGE_STATUS_VARIABLE)
        ):
            said = log_path.read_text(encoding="utf-8").strip().splitlines()
            out_path.unlink(missing_ok=True)  # nothing started: nothing to look back at
            log_path.unlink(missing_ok=True)
            raise SandboxUsageError(said[-1] if said else f"bad options: {args}", code)
        why = "timed out" if code is None else f"exited with {code}"
        raise SandboxError(f"the sandbox did not start ({why}); its log is {log_path}")
    record["exports"] = parse_exports(lines)
    _write_record(state_dir, record)
    return record


def _write_record(state_dir: Path, record: Mapping[str, Any]) -> None:
    path = detached_path(state_dir)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(scratch, path)  # a reader never sees half a record


def stop_detached(
    state_dir: Path, grace: float = 10.0, waiting: Relay | None = None
) -> tuple[dict[str, Any] | None, bool]:
    """Stop the folder's detached sandbox, under the folder's lock (a start under way is
    waited for, then stopped): ``(the record found, whether its sandbox was running)``; the
    record is removed either way. No lock is taken, nor folder made, where there is none."""
    if not (state_dir / "sandbox").is_dir():
        return None, False
    with detached_lock(state_dir, waiting):
        return _read_record(state_dir), _stop_recorded(state_dir, grace)


def _stop_recorded(state_dir: Path, grace: float = 10.0) -> bool:
    """SIGTERM to the recorded sandbox (it stops what it started), then SIGKILL to its whole
    process group and to anything below it still there, so no emulator or JVM is left behind.
    Whether it was running; the record is removed."""
    record = running_detached(state_dir)
    if record is not None:
        pid = int(record["pid"])
        # the emulator runs in a session of its own (and dies with its parent): found by
        # parentage, not by process group, so it can be waited for and killed too
        family = [pid, *_descendants(pid)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pid_alive(p) and not _reaped(p) for p in family):
            time.sleep(0.1)
        _kill_group(pid)
        for member in family:
            if pid_alive(member) and not _reaped(member):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
    detached_path(state_dir).unlink(missing_ok=True)
    return record is not None


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
