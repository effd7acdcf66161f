"""The target a deleting command acts on, and whether a run on it is still alive.

Owns what ``recover``, ``residue``, ``sweep`` and ``merge`` share before they touch anything:
:func:`reach` (the profile, its tables checked by preflight, its kinds),
:func:`liveness_of` (the one liveness authority, :mod:`harness.cleanup.liveness`, for those
kinds) and :func:`wait_until_over` (refuse, exit 10, while any part of a run is alive). It
must never delete anything itself, and imports nothing of the other commands.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness.cleanup.journal import default_state_dir
from harness.config import ConfigError, Profile, refuse_env_overrides
from harness.kinds.registry import load_profile

if TYPE_CHECKING:
    from harness.cleanup.liveness import Liveness
    from harness.kinds import Kind


def reach(env_name: str | None, allow_override: bool = False) -> tuple[Profile, dict[str, Kind]]:
    """A profile whose tables can be reached, and its resource kinds."""
    from harness.clients.aws import Aws
    from harness.kinds import load_kinds
    from harness.safety import preflight

    profile = load_profile(env_name)
    refuse_env_overrides(profile, allow_override)
    if profile.needs_local_sandbox:
        raise ConfigError(
            "the sandbox profile names no running sandbox: start one with "
            '`eval "$(harness env up --detach)"` (it exports HARNESS_BASE_URL and friends), '
            "or pass --env NAME"
        )
    aws = Aws(profile)
    kinds = load_kinds(profile, aws)
    preflight.check_aws(profile, aws, kinds)
    return profile, kinds


def liveness_of(kinds: dict[str, Kind]) -> Liveness:
    """The liveness authority for these kinds: this project's journal folders, and the lease
    table when the profile names one."""
    from harness.cleanup.liveness import Liveness
    from harness.kinds.lease import LeaseKind

    lease = kinds.get("lease")
    return Liveness(lease if isinstance(lease, LeaseKind) else None, default_state_dir())


def wait_until_over(liveness: Liveness, run_id: str, wait: float | None, command: str) -> None:
    """Refuse (exit 10) while any part of ``run_id`` is alive — its shards' folders here and
    their leases anywhere — or, with ``--wait``, wait for them to end (bounded)."""
    deadline = time.monotonic() + (wait or 0)
    parts = liveness.alive_parts(run_id)
    if parts and wait:
        print(f"harness: waiting up to {wait:g}s for run {run_id} to end: {'; '.join(parts)}")
    while parts and time.monotonic() < deadline:
        time.sleep(1.0)
        parts = liveness.alive_parts(run_id)
    if parts:
        raise RunStillAlive(
            f"harness {command}: run {run_id} is still running: {'; '.join(parts)}. Nothing "
            f"was touched. Run it once every shard has ended, or pass --wait SECONDS"
        )


class RunStillAlive(Exception):
    """A command that deletes was asked about a run that is still alive (exit 10)."""
