"""The files a run was asked to write: checked before anything starts, stale ones replaced.

Owns two promises about ``--report`` (``--harness-report``), ``--junitxml``, ``--html`` and
``--summary``: a path the run could not write is refused when the command line is read — one
line naming the option and the fix, exit 8 — never after the tests touched the environment;
and no file left at one of those paths by an earlier run can be read as this run's: the JSON
report is replaced by an ``incomplete`` placeholder, the others are removed. It writes only
those files (and a probe it removes at once in their folders); it never reads the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from harness.run import outcome

#: option as the user spells it -> the pytest option's dest
OPTIONS = {
    "--report": "harness_report",
    "--junitxml": "xmlpath",
    "--html": "htmlpath",
    "--summary": "harness_summary",
}


class OutputError(Exception):
    """A named output cannot be written; the message names the option and the fix."""


def named(get: Any) -> dict[str, Path]:
    """option -> path, for the outputs this run was given (``get(dest)`` reads an option)."""
    found = {}
    for option, dest in OPTIONS.items():
        value = get(dest)
        if value:
            found[option] = Path(os.path.expanduser(str(value)))
    return found


def _is_regular(path: Path) -> bool:
    """A regular file itself (not a device such as /dev/null, a pipe, or a link)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def check(outputs: dict[str, Path]) -> None:
    """Each path can be written: an existing file (or device, such as /dev/null) that this
    process may write, or a new file in a folder that exists or can be made; never a
    folder."""
    for option, path in outputs.items():
        try:
            if path.exists() and not path.is_dir():
                if not os.access(path, os.W_OK):
                    raise PermissionError(13, "Permission denied")
                continue
            if path.is_dir():
                raise OutputError(f"{option} {path}: it is a folder; name a file")
            blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            if blocking is not None:
                raise OutputError(
                    f"{option} {path}: {blocking} is not a folder; name a file in a folder "
                    f"you can write"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".harness-probe-"):
                pass
        except OSError as error:
            reason = error.strerror or str(error)
            raise OutputError(
                f"{option} {path}: cannot write there ({reason}); name a file in a folder you "
                f"can write"
            ) from None


def prepare(outputs: dict[str, Path], run_id: str = "") -> None:
    """:func:`check`, then :func:`clear_stale`. When one output cannot be written, the others
    are still not left stale — the JSON report (if it can be written) says so, ``config``, 8,
    with the one line; an earlier JUnit, HTML or summary file is removed — then the
    :class:`OutputError` is raised."""
    try:
        check(outputs)
    except OutputError as error:
        for option, path in outputs.items():  # the ones that can be written are not stale
            with contextlib.suppress(OutputError, OSError):
                check({option: path})
                if option == "--report":
                    write_failed_start(path, outcome.CONFIG, str(error), run_id)
                else:
                    clear_stale({option: path})
        raise
    clear_stale(outputs, run_id)


def clear_stale(outputs: dict[str, Path], run_id: str = "") -> None:
    """An earlier run's files at these paths go: the JSON report becomes ``incomplete``
    until this run writes its verdict, the others are removed until rewritten."""
    for option, path in outputs.items():
        if option == "--report":
            write_placeholder(path, run_id)
        elif _is_regular(path):  # never a device (/dev/null), a pipe or what a link names
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def write_atomic(path: Path, body: dict[str, Any]) -> None:
    """``body`` as JSON at ``path``, whole or not at all: written to a temporary file in the
    same folder, then renamed over ``path`` (an OSError leaves the earlier file as it was).
    A link is followed (its target is replaced, not the link); a path that exists and is not
    a regular file — a device such as /dev/null, a pipe — is written in place, never renamed
    over."""
    text = json.dumps(body, indent=2) + "\n"
    path = path.resolve() if path.is_symlink() else path
    if path.exists() and not _is_regular(path):
        with path.open("w", encoding="utf-8") as out:
            out.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


#: What the report says while its run has not written its verdict (and forever, if the run
#: was killed first): never a verdict, so a CI gate reading ``outcome`` cannot pass on it.
INCOMPLETE = "incomplete"


def write_placeholder(path: Path, run_id: str = "") -> None:
    """Replace an earlier run's report at ``path`` before this run does anything: a report
    from last time (``passed``) must never be read as this run's."""
    write_atomic(
        path,
        {
            "run_id": run_id,
            "exit_status": None,
            "outcome": INCOMPLETE,
            "error": "the run has not written its verdict: it is still running, or it was "
            "killed before it could (its exit status says how it ended)",
            "tests": {},
        },
    )


def write_failed_start(
    path: Path, status: int, message: str, run_id: str = "", target: dict[str, Any] | None = None
) -> None:
    """The report of a run that never started (bad configuration, unreachable target): CI
    reads the same two fields, ``outcome`` and ``exit_status``, as for any other run."""
    body = {
        "run_id": run_id,
        "exit_status": status,
        "outcome": outcome.word(status),
        "error": message,
        "target": target or {},
        "tests": {},
    }
    write_atomic(path, body)
