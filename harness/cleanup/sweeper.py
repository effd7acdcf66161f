"""The sweeper: finds what crashed or killed runs left behind and deletes it in batches.

Owns the sweep *plan* — every item any kind finds under the ``itest-`` prefix, grouped by the
run its namespace names, minus runs that are still alive (as the liveness authority,
:mod:`harness.cleanup.liveness`, says: a live lease, or a lock held on this machine) and runs
younger than the age limit — and its execution through the guarded batch delete. It never
sweeps a protected target, never deletes more than the cap without being told, and by
default only shows what it would do.

On big tables the scans are the cost: :class:`~harness.kinds.dynamo.ScanControl` runs them as
parallel segments, reading only key and marker attributes, within a read budget, with a
progress line, and from a checkpoint when a sweep was stopped half-way (see
:func:`scan_control`).
"""

from __future__ import annotations

import inspect
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_SWEEP_MAX
from harness.kinds import Found, Kind
from harness.kinds.dynamo import Checkpoint, Progress, RateLimiter, ScanControl
from harness.namespace import PREFIX, RunId, find_namespace
from harness.safety.guards import Owner, OwnershipError, check, guarded_batch_delete

DEFAULT_MAX = DEFAULT_SWEEP_MAX


class SweepRefused(Exception):
    """The sweep must not run as asked; the message says why and what to do."""


@dataclass
class RunLeftovers:
    run_id: RunId
    items: list[Found] = field(default_factory=list)

    @property
    def age(self) -> float:
        return self.run_id.age_seconds()

    def counts(self) -> Counter[str]:
        return Counter(item.kind for item in self.items)


@dataclass
class SweepPlan:
    to_delete: dict[str, RunLeftovers] = field(default_factory=dict)
    alive: dict[str, RunLeftovers] = field(default_factory=dict)
    too_young: dict[str, RunLeftovers] = field(default_factory=dict)
    unparsable: list[Found] = field(default_factory=list)
    #: Items that look harness-made but fail the ownership gate (``itest-…@gmail.com``: a
    #: harness-shaped address on a real domain is someone's): never deleted, never in the way.
    foreign: list[Found] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return sum(len(run.items) for run in self.to_delete.values())


def scan_control(
    *,
    segments: int = 1,
    max_rate: tuple[float, str] | None = None,
    state_dir: Path | None = None,
    profile: str = "",
    restart: bool = False,
    progress: Callable[[str], None] | None = None,
    page_size: int | None = None,
) -> ScanControl:
    """The sweep's scans: ``segments`` in parallel, within ``max_rate`` ((rate, "items"|"cu")
    per second, shared by all segments), resumable from a checkpoint under ``state_dir``
    (keyed by ``profile``, table and segment; ``restart`` drops it first), a progress line
    through ``progress`` for long sweeps."""
    checkpoint = Checkpoint(state_dir, profile) if state_dir is not None else None
    if checkpoint is not None and restart:
        checkpoint.clear()
    return ScanControl(
        segments=segments,
        limiter=RateLimiter(*max_rate) if max_rate else None,
        checkpoint=checkpoint,
        progress=Progress(progress) if progress is not None else None,
        page_size=page_size,
    )


def _takes_scan(kind: Kind) -> bool:
    try:
        return "scan" in inspect.signature(kind.find).parameters
    except (TypeError, ValueError):
        return False


def plan(
    kinds: Mapping[str, Kind],
    *,
    older_than: float,
    alive: Collection[str],
    now: float | None = None,
    scan: ScanControl | None = None,
) -> SweepPlan:
    now = time.time() if now is None else now
    result = SweepPlan()
    anyone = Owner(run=None)
    for kind in sorted(kinds.values(), key=lambda k: k.sweep_order):
        find: Any = kind.find  # ``scan`` is an optional keyword of the contract
        found = (
            find(f"{PREFIX}-", scan=scan)
            if scan is not None and _takes_scan(kind)
            else find(f"{PREFIX}-")
        )
        for item in found:
            namespace = find_namespace(item.marker)
            if namespace is None:
                result.unparsable.append(item)
                continue
            try:  # the gate again at delete time; here it keeps foreign items out of the plan
                check(kind, item.ids, anyone)
            except OwnershipError:
                result.foreign.append(item)
                continue
            run_id = str(namespace.run)
            if run_id in alive:
                bucket = result.alive
            elif now - namespace.run.started.timestamp() < older_than:
                bucket = result.too_young
            else:
                bucket = result.to_delete
            bucket.setdefault(run_id, RunLeftovers(namespace.run)).items.append(item)
    return result


def execute(
    kinds: Mapping[str, Kind],
    sweep: SweepPlan,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> Counter[str]:
    """Delete the plan's items, kind by kind in sweep order (users before what derives from
    them, leases last); returns how many of each kind were deleted."""
    by_kind: dict[str, list[Found]] = defaultdict(list)
    for run in sweep.to_delete.values():
        for item in run.items:
            by_kind[item.kind].append(item)
    deleted: Counter[str] = Counter()
    owner = Owner(run=None)  # any harness run; age and liveness were checked by the plan
    for name in sorted(by_kind, key=lambda n: kinds[n].sweep_order):
        progress(f"sweeping {len(by_kind[name])} {name} item(s)…")
        deleted.update(guarded_batch_delete(kinds, owner, by_kind[name]))
    return deleted


def render(sweep: SweepPlan, *, dry_run: bool) -> str:
    lines = []
    header = "WOULD DELETE" if dry_run else "DELETING"
    lines.append(f"{'RUN':<28} {'AGE':>8}  {header}")
    for run_id, run in sorted(sweep.to_delete.items()):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts().items()))
        lines.append(f"{run_id:<28} {_age(run.age):>8}  {counts}")
    if not sweep.to_delete:
        lines.append("(nothing to sweep)")
    for label, bucket in (("alive (lease held)", sweep.alive), ("too young", sweep.too_young)):
        if bucket:
            items = sum(len(r.items) for r in bucket.values())
            lines.append(f"skipped, {label}: {len(bucket)} run(s), {items} item(s)")
    if sweep.unparsable:
        lines.append(f"skipped, no parsable namespace: {len(sweep.unparsable)} item(s)")
    if sweep.foreign:
        lines.append(
            f"skipped, not harness data (fails the ownership gate): {len(sweep.foreign)} item(s)"
        )
    total = sweep.item_count
    runs = len(sweep.to_delete)
    lines.append(f"total: {total} item(s) in {runs} run(s)")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
