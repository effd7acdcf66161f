"""``harness env up`` and ``harness env down``: the local sandbox from a user's shell.

Owns the foreground start (this process becomes the sandbox, which names itself
``harness env up`` in its help and in its one bad-option line, exit 8), the detached start
(one sandbox per state folder, under the folder's lock: a second ``env up --detach`` waits
for a start under way, then reuses the running sandbox only when it was asked for with the
same options, and otherwise refuses with exit 8 and leaves it running), relaying the
sandbox's progress lines to stderr while it starts, and ``env down``. stdout carries only
lines for the shell to ``eval`` (exports, ``unset``, a comment): never a message, and nothing
at all when a command fails. Must never stop a process other than the recorded sandbox.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import NoReturn

from harness.cleanup.journal import default_state_dir
from harness.run import outcome
from harness.run.local_sandbox import (
    ISOLATED,
    SandboxUsageError,
    detached_path,
    ensure_detached,
    front_environ,
    stop_detached,
)

PROG = "harness env up"


def say(message: str) -> None:
    sys.stderr.write(f"harness: {message}\n")


def relay(line: str) -> None:
    """A progress line of the sandbox's start, under the command's own lines."""
    sys.stderr.write(f"harness:   {line}\n")


def up(args: list[str]) -> int:
    """``env up [--detach] [sandbox options]``."""
    if "--detach" in args and not {"-h", "--help"} & set(args):
        return up_detached([arg for arg in args if arg != "--detach"])
    foreground(args)


def foreground(args: list[str]) -> NoReturn:
    """Become the sandbox: it prints its exports, serves until Ctrl-C, stops what it started."""
    command = [sys.executable, *ISOLATED, "-m", "harness.sandbox", *args]
    os.execve(sys.executable, command, front_environ(PROG, outcome.CONFIG, os.environ))


def up_detached(args: list[str]) -> int:
    state_dir = default_state_dir()
    try:
        record, reused = ensure_detached(
            state_dir,
            args,
            say=say,
            progress=relay,
            environ=front_environ(PROG, outcome.CONFIG, os.environ),
        )
    except SandboxUsageError as error:
        sys.stderr.write(f"{error}\n")
        return outcome.CONFIG
    if reused:
        say(
            f"a detached sandbox is already running here (pid {record['pid']}, the options "
            f"asked for); its exports follow"
        )
    for name, value in record["exports"].items():
        print(f"export {name}={shlex.quote(value)}")
    print(
        f"# sandbox ready: pid {record['pid']}; log {record['log']}; stop it with "
        f'`eval "$(harness env down)"`'
    )
    return outcome.PASSED


def down() -> int:
    state_dir = default_state_dir()
    record, running = stop_detached(state_dir, waiting=say)
    if running and record is not None:
        say(f"stopped the detached sandbox (pid {record['pid']})")
    else:
        say(f"no detached sandbox is running (nothing at {detached_path(state_dir)})")
    exports = (record or {}).get("exports") or {}
    if exports:
        print(f"unset {' '.join(sorted(exports))}")
    return outcome.PASSED
