"""The residue check: after a run, is anything carrying its namespace still there?

Owns looking in the environment (every kind's ``find``) for items whose namespace marker
starts with the run id — including records that processors wrote asynchronously — letting
in-flight work settle until a deadline, then reporting each leftover as a leak and removing
it through the guarded delete path, so a leak is counted *and* cleaned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.cleanup.journal import Resource
from harness.kinds import Found, Kind
from harness.safety.guards import Owner


@dataclass
class ResidueResult:
    leaked: list[Found] = field(default_factory=list)
    kept: list[Found] = field(default_factory=list)
    cleaned: list[Found] = field(default_factory=list)
    uncleaned: list[tuple[Found, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.leaked


def kept_matcher(kept_ids: list[dict]) -> Callable[[Found], bool]:
    """Matches found items that belong to resources kept for debugging: the same uid or
    email (a kept user's token and notifications are kept with it)."""
    keys = {(k, str(v)) for ids in kept_ids for k, v in ids.items() if k in ("uid", "email")}
    return lambda found: any((k, str(found.ids.get(k))) in keys for k in ("uid", "email"))


def find_all(kinds: Mapping[str, Kind], prefix: str) -> list[Found]:
    found: list[Found] = []
    for kind in kinds.values():
        found.extend(kind.find(prefix))
    return found


def check(
    kinds: Mapping[str, Kind],
    run_prefix: str,
    owner: Owner,
    *,
    settle: float = 3.0,
    interval: float = 0.25,
    is_kept: Callable[[Found], bool] = lambda _: False,
    remove: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> ResidueResult:
    """Find leftovers of ``run_prefix``; re-look until ``settle`` seconds pass with items
    still present (an asynchronous delete may be in flight), then clean what remains
    (unless ``remove`` is off: a protected target is never written to). Items kept on
    purpose (``--keep-on-failure``) are listed apart and left for the sweeper."""
    deadline = time.monotonic() + settle

    def look() -> tuple[list[Found], list[Found]]:
        everything = find_all(kinds, run_prefix)
        return [f for f in everything if not is_kept(f)], [f for f in everything if is_kept(f)]

    found, kept = look()
    reported = -1
    while found and time.monotonic() < deadline:
        if len(found) != reported:
            reported = len(found)
            progress(
                f"residue check: {reported} item(s) present, letting them settle ({settle:g}s)"
            )
        time.sleep(interval)
        found, kept = look()
    result = ResidueResult(leaked=list(found), kept=kept)
    for item in found if remove else []:
        resource = Resource(seq=0, kind=item.kind, ids=dict(item.ids), state="created")
        try:
            kinds[item.kind].delete(resource.ids, owner)
            result.cleaned.append(item)
        except Exception as error:  # a refusal or a failure: reported, never raised past the run
            result.uncleaned.append((item, f"{type(error).__name__}: {error}"))
    return result
