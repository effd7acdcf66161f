"""The invariants checked after every scenario, and the violations they find.

1. ``report=exit`` — the exit status and the JSON report's ``outcome``/``exit_status`` agree;
   or the run said it could not write its report (a full disk) and the report still says it
   is incomplete; or the process died by a signal and the report is absent, says it is
   incomplete, or says
   the status a shell then sees (128 + the signal: ``interrupted``/130 for a death by
   SIGINT). A report left from an earlier run (the driver puts a stale passing one at the
   path first), a torn one or another run's is a violation, and so is a Ctrl-C or SIGTERM
   before the verdict that ends in anything but ``interrupted`` (130).
2. ``environment`` — after at most one ``harness recover`` with no arguments (same
   environment, same state directory), the independent digest (:mod:`tests.simulate.digest`)
   equals the one taken before the scenario.
3. ``nothing-left`` — no process of the command or its sandbox is alive after a short grace;
   no file in the project folder outside ``.harness/``, the named outputs and pytest's own
   caches (``__pycache__``, ``.pytest_cache``); nothing left in the command's ``/tmp`` but
   pytest's own ``pytest-of-<user>`` (a private ``/tmp``, so what the run made there is told
   apart from what others make).
4. ``no-false-leak`` — nothing is reported as leaked: the scenario suite creates only through
   the ledger, so everything it made was recorded.
5. ``live-item-kept`` (multi-run scenarios) — no live run's item is deleted by another command.

Besides: ``reached`` — a phase that must be reached was not; ``exits`` — a command did not exit
in time and was killed (a hang). Owns the checks only; the runner gathers the facts.
"""

from __future__ import annotations

import contextlib
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run import outcome
from tests.simulate.processes import ProcInfo

REPORT_EXIT = "report=exit"
ENVIRONMENT = "environment"
NOTHING_LEFT = "nothing-left"
NO_FALSE_LEAK = "no-false-leak"
LIVE_ITEM = "live-item-kept"
REACHED = "reached"
EXITS = "exits"
ORDER = (REPORT_EXIT, ENVIRONMENT, NOTHING_LEFT, NO_FALSE_LEAK, LIVE_ITEM, REACHED, EXITS)

#: pytest's own files in a project folder: not the harness's.
PYTEST_OWN = ("__pycache__", ".pytest_cache")
#: pytest's own base temporary folder (``/tmp/pytest-of-<user>``, made by pytest-xdist for
#: its workers whether or not a test asks for ``tmp_path``; pytest keeps the last three).
PYTEST_TMP_PREFIX = "pytest-of-"
#: The checkout's path under /tmp, when it lies there (a clone in /tmp/fresh): the runner
#: bind-mounts it back into each command's private /tmp at the same path, on a chain of empty
#: folders it makes there (not the command's).
_CHECKOUT = Path(__file__).resolve().parents[2]
CHECKOUT_IN_TMP = _CHECKOUT.relative_to("/tmp").parts if _CHECKOUT.is_relative_to("/tmp") else ()


def _mount_point_only(entry: Path) -> bool:
    """``entry`` is the first folder of :data:`CHECKOUT_IN_TMP`'s chain, holding nothing but
    the rest of the chain (the mount is gone with the command's namespace)."""
    if not CHECKOUT_IN_TMP or entry.name != CHECKOUT_IN_TMP[0] or not entry.is_dir():
        return False
    inside = sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*"))
    chain = ["/".join(CHECKOUT_IN_TMP[1:i]) for i in range(2, len(CHECKOUT_IN_TMP) + 1)]
    return inside == sorted(chain)


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


@dataclass
class CommandResult:
    """What one command of a scenario did (the facts the checks read)."""

    name: str
    run_id: str
    returncode: int | None
    output: str
    report_path: Path | None = None
    stale_text: str = ""
    hung: bool = False
    notes: list[str] = field(default_factory=list)
    #: The report file's text when the command ended (None: no file), read once: the
    #: verdict and its evidence never depend on when the folder is looked at.
    report_text: str | None = None

    def __post_init__(self) -> None:
        if self.report_text is None and self.report_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.report_text = self.report_path.read_text(encoding="utf-8", errors="replace")

    @property
    def status(self) -> str:
        code = self.returncode
        if code is None:
            return "hung"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit {code}"

    def report(self) -> tuple[dict[str, Any] | None, str]:
        """The JSON report (None when absent), and its raw text."""
        text = self.report_text
        if text is None:
            return None, ""
        try:
            body = json.loads(text)
        except ValueError:
            return {"_torn": True}, text
        return (body if isinstance(body, dict) else {"_torn": True}), text

    def said(self) -> str:
        """What the report says, in a few words (for the evidence)."""
        report, text = self.report()
        if report is None:
            return "no report"
        if self.stale_text and text == self.stale_text:
            return "the stale report from before (untouched)"
        if report.get("_torn"):
            return f"a torn report ({len(text)} bytes)"
        return f"report {report.get('outcome')!r}/{report.get('exit_status')!r}"

    def tail(self, lines: int = 6) -> str:
        kept = [line for line in self.output.splitlines() if line.strip()]
        return " | ".join(line.strip()[:160] for line in kept[-lines:])


def stale_report(path: Path) -> str:
    """A passing report of an earlier run, put where the run will write its own."""
    body = {
        "run_id": "itest-20000101t000000-stal",
        "outcome": "passed",
        "exit_status": 0,
        "tests": {"passed": 1},
        "note": "left by an earlier run (the fault simulation's bait)",
    }
    text = json.dumps(body, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


#: What a run says on stderr when it cannot write its report (a full disk): the report then
#: keeps saying ``incomplete`` — truthful, and documented (README, "Reports").
COULD_NOT_WRITE = "could not write the JSON report"


def _said(report: dict[str, Any]) -> str:
    return f"outcome={report.get('outcome')!r} exit_status={report.get('exit_status')!r}"


def check_report(result: CommandResult, expect_interrupted: bool = False) -> list[Violation]:
    found: list[Violation] = []

    def bad(detail: str) -> None:
        found.append(Violation(REPORT_EXIT, f"{result.name}: {detail}"))

    if result.hung:
        found.append(Violation(EXITS, f"{result.name}: did not exit in time; killed"))
    report, text = result.report()
    code = result.returncode
    if code is None:
        return found
    if report is not None and result.stale_text and text == result.stale_text:
        bad(f"{result.status}, and the earlier run's report (passed, 0) is still at the path")
    elif report is not None and report.get("_torn"):
        bad(f"{result.status}, and the report is not JSON (torn): {text[:80]!r}")
    elif report is None:
        if code >= 0:
            bad(f"{result.status} but no report was written")
    else:
        if report.get("run_id") and report.get("run_id") != result.run_id:
            # (a run that never started writes its report with no run id: that is its own)
            bad(f"{result.status}; the report is run {report.get('run_id')!r}'s, not this run's")
        elif code < 0:
            # what a shell (and so CI) sees of a death by a signal: 128 + the signal number
            shell = 128 - code
            incomplete = report.get("complete") is False or report.get("outcome") == "incomplete"
            as_shell = (report.get("exit_status"), report.get("outcome")) == (
                shell,
                outcome.word(shell),
            )
            if not (incomplete or as_shell):
                bad(
                    f"{result.status} (a shell sees {shell}), yet the report reads as complete: "
                    f"{_said(report)}"
                )
        elif report.get("outcome") == "incomplete" and COULD_NOT_WRITE in result.output:
            pass  # a full disk: the run said so, and the report says it holds no verdict
        elif report.get("exit_status") != code or report.get("outcome") != outcome.word(code):
            bad(f"{result.status}, the report says {_said(report)}")
    if expect_interrupted and code >= 0 and code != outcome.INTERRUPTED:
        bad(f"interrupted before its verdict, yet {result.status} ({outcome.word(code)})")
    return found


def check_leaks(result: CommandResult) -> list[Violation]:
    report, _ = result.report()
    own = report is not None and report.get("run_id") in ("", result.run_id)
    if report is not None and own and not report.get("_torn"):
        leaked = report.get("leaked") or []
        count = (report.get("resources") or {}).get("leaked", 0)
        if leaked or count:
            shown = "; ".join(
                " ".join(f"{k}={v}" for k, v in item.items() if k != "email") for item in leaked[:3]
            )
            return [
                Violation(NO_FALSE_LEAK, f"{result.name}: report lists {count} leaked: {shown}")
            ]
    lines = [line.strip() for line in result.output.splitlines() if "RESIDUE:" in line]
    if lines:
        return [Violation(NO_FALSE_LEAK, f"{result.name}: {lines[0][:160]}")]
    return []


def check_processes(left: list[ProcInfo]) -> list[Violation]:
    if not left:
        return []
    shown = "; ".join(f"pid {p.pid} {p.command[:90]}" for p in left[:4])
    return [Violation(NOTHING_LEFT, f"{len(left)} process(es) alive after the grace: {shown}")]


def project_files(project: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in project.rglob("*"):
        if path.is_file() or path.is_symlink():
            stat = path.lstat()
            found[path.relative_to(project).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def check_files(
    project: Path, before: dict[str, tuple[int, int]], outputs: list[Path], private_tmp: Path
) -> list[Violation]:
    allowed = {p.relative_to(project).as_posix() for p in outputs if p.is_relative_to(project)}
    strays = []
    for name, signature in project_files(project).items():
        parts = name.split("/")
        if parts[0] == ".harness" or name in allowed or set(parts) & set(PYTEST_OWN):
            continue
        if before.get(name) != signature:
            strays.append(name)
    found = []
    if strays:
        found.append(
            Violation(NOTHING_LEFT, f"file(s) outside .harness/ and the outputs: {strays[:5]}")
        )
    left_in_tmp = sorted(
        p.name
        for p in (private_tmp.iterdir() if private_tmp.exists() else [])
        if not p.name.startswith(PYTEST_TMP_PREFIX) and not _mount_point_only(p)
    )
    if left_in_tmp:
        found.append(Violation(NOTHING_LEFT, f"left in /tmp: {left_in_tmp[:5]}"))
    return found


def check_environment(lines: list[str], recovered: str) -> list[Violation]:
    if not lines:
        return []
    shown = "; ".join(lines[:5]) + (f"; … {len(lines) - 5} more" if len(lines) > 5 else "")
    return [Violation(ENVIRONMENT, f"after {recovered}: {len(lines)} difference(s): {shown}")]
