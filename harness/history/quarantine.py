"""The quarantine file: tests that still run and are reported but do not fail the run, until
a date.

Owns ``quarantine.toml`` in the project root (beside ``environments.toml``; committed with
the tests, so a quarantine is reviewed like code): reading it (a bad file is a
:class:`QuarantineError` naming the fix — exit 8 before anything starts), whether a test is
quarantined on a given day (through its ``until`` date, inclusive; an expired entry fails
the run again and is said so), and adding or removing an entry (``harness quarantine``),
written whole to a temporary file renamed over the old one.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

FILE_NAME = "quarantine.toml"
HEADER = """\
# Quarantined tests (`harness quarantine add NODEID --until YYYY-MM-DD --reason TEXT`).
# A quarantined test still runs and is reported, but its failure does not fail the run —
# until the day after `until`. Remove an entry with `harness quarantine remove NODEID`.
"""


class QuarantineError(ValueError):
    """The quarantine file or a quarantine command is wrong; the message names the fix."""


@dataclass(frozen=True)
class Entry:
    nodeid: str
    until: date
    reason: str
    added: str = ""

    def active(self, today: date) -> bool:
        return today <= self.until


def today() -> date:
    return datetime.now(UTC).date()


def path_in(root: Path | str) -> Path:
    return Path(root) / FILE_NAME


def parse_date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise QuarantineError(
            f"{where}: {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-12-31"
        ) from None


def read(path: Path) -> dict[str, Entry]:
    """nodeid -> entry; a missing file quarantines nothing."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise QuarantineError(f"{path}: {error}; fix it or remove the file") from None
    entries = data.get("quarantine", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise QuarantineError(
            f"{path}: entries are [[quarantine]] tables with nodeid, until and reason"
        )
    found: dict[str, Entry] = {}
    for index, entry in enumerate(entries, 1):
        where = f"{path} entry {index}"
        nodeid, reason = entry.get("nodeid"), entry.get("reason")
        if not isinstance(nodeid, str) or not nodeid or not isinstance(reason, str) or not reason:
            raise QuarantineError(f"{where}: give it a nodeid and a reason (both text)")
        until = entry.get("until")
        day = until if isinstance(until, date) else parse_date(str(until), f"{where} until")
        found[nodeid] = Entry(nodeid, day, reason, str(entry.get("added", "")))
    return found


def _toml_string(text: str) -> str:
    # JSON's escapes (\", \\, \n, \uXXXX for control characters) are TOML's basic string's
    return json.dumps(text, ensure_ascii=False)


def write(path: Path, entries: dict[str, Entry]) -> None:
    lines = [HEADER]
    for entry in sorted(entries.values(), key=lambda e: e.nodeid):
        lines += [
            "[[quarantine]]",
            f"nodeid = {_toml_string(entry.nodeid)}",
            f"until = {entry.until.isoformat()}",
            f"reason = {_toml_string(entry.reason)}",
            f"added = {_toml_string(entry.added)}",
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".quarantine-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add(path: Path, nodeid: str, until: str, reason: str, on: date | None = None) -> Entry:
    day = on or today()
    if not nodeid.strip():
        raise QuarantineError("harness quarantine add: name the test's node id")
    if not reason.strip():
        raise QuarantineError(
            "harness quarantine add: say why with --reason TEXT (an issue link, say)"
        )
    end = parse_date(until, "--until")
    if end < day:
        raise QuarantineError(
            f"--until {end.isoformat()} has passed (today is {day.isoformat()}); give a later date"
        )
    entries = read(path)
    entry = Entry(nodeid.strip(), end, reason.strip(), day.isoformat())
    entries[entry.nodeid] = entry
    write(path, entries)
    return entry


def remove(path: Path, nodeid: str) -> bool:
    entries = read(path)
    if entries.pop(nodeid, None) is None:
        return False
    write(path, entries)
    return True
