"""Where a project is: its profiles file and the folder that keeps its state.

Owns finding ``environments.toml`` and the project root. A file named explicitly
(``--harness-config`` or ``$HARNESS_CONFIG``) is used as given; otherwise the search starts in
one folder — pytest's rootdir for the plugin, the current folder for the commands — and takes
the nearest ``environments.toml`` there or above it, the way git finds its repository. The
project root, whose ``.harness`` holds the journals, is the folder of the file found, so a run
started in a subfolder keeps its journals where ``harness recover`` from the root finds
them; with a named file (or none found) it is the folder the search started from.

Pure: it only asks whether files exist, never reads or writes one, and imports nothing of the
harness, so config and the journal can both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PROFILES_FILE = "environments.toml"
STATE_FOLDER = ".harness"
CONFIG_VARIABLE = "HARNESS_CONFIG"


def find_profiles(start: Path | str) -> Path | None:
    """The nearest ``environments.toml`` in ``start`` or a folder above it (absolute)."""
    folder = Path(start).absolute()
    for candidate in (folder, *folder.parents):
        path = candidate / PROFILES_FILE
        if path.is_file():
            return path
    return None


def shown(path: Path) -> Path:
    """``path`` relative to the current folder when it is inside it (as a user would type
    it), else absolute."""
    absolute = path.absolute()
    try:
        return absolute.relative_to(Path.cwd())
    except ValueError:
        return absolute


def _named(named: Path | str | None, environ: Mapping[str, str]) -> str:
    """The file the option or ``$HARNESS_CONFIG`` names; "" when neither does."""
    return str(named or environ.get(CONFIG_VARIABLE) or "")


def profiles_file(
    named: Path | str | None, environ: Mapping[str, str], start: Path | str | None = None
) -> Path:
    """The profiles file: ``named`` (the option) > ``$HARNESS_CONFIG`` > the nearest
    ``environments.toml`` from ``start`` (default: the current folder) upward > the one
    ``start`` would hold (which does not exist: the bare sandbox profile)."""
    given = _named(named, environ)
    if given:
        return Path(given)
    begin = Path.cwd() if start is None else Path(start)
    return shown(find_profiles(begin) or begin / PROFILES_FILE)


def project_root(
    named: Path | str | None, environ: Mapping[str, str], start: Path | str | None = None
) -> Path:
    """The folder whose ``.harness`` keeps the state: the folder of the profiles file found
    from ``start`` (default: the current folder); with a named file, or none found,
    ``start`` itself."""
    begin = Path.cwd() if start is None else Path(start)
    found = None if _named(named, environ) else find_profiles(begin)
    return shown(found.parent if found is not None else begin)
