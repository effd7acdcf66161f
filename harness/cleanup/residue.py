"""The residue check: after a run, is anything carrying its namespace still there?

Owns looking in the environment for what the run may have left, at a cost that grows with
what the run touched — not with the size of the environment:

1. **By key**: every resource the run's journals recorded is looked up (``Kind.exists``),
   all of a kind's at once (``Kind.exists_many``: ``BatchGetItem``, 100 keys a call), with
   what derives from it (``Kind.derived_many``: a user's welcome notification, by its key,
   all of a kind's at once) and what the service wrote for it on its own (``Kind.related``:
   items of declared kinds whose marker carries its namespaced name — asked only of kinds
   that answer by key or index, ``related_by_key``; the others are left to the bounded look
   below).
2. **Namespace-wide**, for what a test created without the ledger: kinds whose ``find`` is
   cheap (a name-prefix listing) always; a kind that must scan its tables only while each
   holds at most ``scan_limit`` items (DescribeTable's count, one call; 0 = never). The
   default, 1,000, bounds that look to a fixed cost (at most ~1,000 small items read per
   table: a sandbox, a fresh dev stack), so a run's cost never grows with a staging
   table — which is never scanned by a post-deploy run.

Items that belong to a recorded resource (itself, derived, related — by the one rule,
:func:`~harness.namespace.belongs`: equal, or continued after a separator; never a
look-alike's) are cleaned with it and are not leaks. A recorded resource still there after
the tests' cleanup is **unfinished cleanup** (the cleanup was interrupted, cut short or
failed): removed here, reported as such, never as a leak. An item under the run's namespace
that belongs to no recorded resource is a **leak**: reported, removed through the guarded
delete path, and the run fails. While items are present it re-checks only those, by key,
until ``settle`` passes (an asynchronous delete may be in flight).

What belongs to a leak is part of it (an account a test made without the ledger, and the
welcome note the service wrote for it): asked of its kind (``derived_many``) and of the
related kinds that answer by key, or whose tables the namespace-wide look scanned — also what
the service wrote *after* the look began. So once the leaks are removed it looks again for
what belongs to them, every ``interval`` until ``settle`` has passed since (a consumer that
was still busy writes it meanwhile; bounded, and paid only by a run that leaked), and each
such item is listed as leaked and removed too, through the gate. A protected target is never
written to: it looks once and removes nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.cleanup.journal import Resource
from harness.kinds.base import Found, Kind
from harness.namespace import belongs
from harness.safety.guards import Owner, guarded_deleter

#: Tables above this many items (DescribeTable's ItemCount) are never scanned by a run.
DEFAULT_SCAN_LIMIT = 1_000


@dataclass
class ResidueResult:
    #: Items under the run's namespace that belong to no recorded resource: made without the
    #: ledger (or by the service for no resource the run recorded).
    leaked: list[Found] = field(default_factory=list)
    #: Recorded resources still present after the tests' cleanup (it was interrupted, cut
    #: short, or failed): removed here like leaks, but never reported as leaks.
    unfinished: list[Found] = field(default_factory=list)
    kept: list[Found] = field(default_factory=list)
    cleaned: list[Found] = field(default_factory=list)
    #: Items the service wrote for recorded resources, removed with them (not leaks).
    belonging: list[Found] = field(default_factory=list)
    uncleaned: list[tuple[Found, str]] = field(default_factory=list)
    #: Tables a namespace-wide look skipped because they were too big (name, item count).
    skipped_tables: list[tuple[str, int]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.leaked and not self.unfinished


def _key(found: Found) -> tuple[str, tuple[tuple[str, str], ...]]:
    return found.kind, tuple(sorted((k, str(v)) for k, v in found.ids.items()))


def kept_matcher(kept: Iterable[Mapping[str, Any]]) -> Callable[[Found], bool]:
    """Matches found items that belong to resources kept for debugging (--keep-on-failure):
    the resource itself (the same ``uid`` or ``email``) or anything whose marker belongs to a
    kept resource's marker (its notifications, its notes: :func:`~harness.namespace.belongs`
    — a look-alike's items are not kept for it)."""
    markers: set[str] = set()
    values: set[tuple[str, str]] = set()
    for ids in kept:
        for k, v in ids.items():
            if k == "_marker" and v:
                markers.add(str(v))
            elif k in ("uid", "email") and isinstance(v, str | int):  # what identifies one
                values.add((k, str(v)))

    def is_kept(found: Found) -> bool:
        if any(belongs(found.marker, m) for m in markers):
            return True
        return any((k, str(v)) in values for k, v in found.ids.items())

    return is_kept


def table_sizes(kind: Kind, cache: dict[str, int] | None = None) -> list[tuple[str, int]]:
    """(table, approximate item count) of every table the kind reads, one DescribeTable each
    (once per table and ``cache``)."""
    from harness.kinds.declared import DeclaredKind

    stores = getattr(kind, "store_sizes", None)  # a Cognito pool, an S3 bucket, a SQL table
    if stores is not None:
        return list(stores())
    names = (
        [kind.table_name]
        if isinstance(kind, DeclaredKind)
        else [kind.profile.setting(s.name) for s in type(kind).settings if s.table]
    )
    cache = {} if cache is None else cache
    for name in dict.fromkeys(n for n in names if n):
        if name not in cache:
            table = kind.aws.dynamodb_client.describe_table(TableName=name)["Table"]
            cache[name] = int(table.get("ItemCount", 0))
    return [(name, cache[name]) for name in dict.fromkeys(n for n in names if n)]


def _answers_related(kind: Kind) -> bool:
    return type(kind).related is not Kind.related


def _belonging(
    kinds: Mapping[str, Kind],
    ids_by_kind: Mapping[str, list[Mapping[str, Any]]],
    related_kinds: list[Kind],
) -> dict[Any, Found]:
    """What belongs to these resources (their ids, by kind): what derives from them by key,
    all of a kind's at once (``derived_many``), and what ``related_kinds`` hold whose marker
    belongs to each one's (:func:`~harness.namespace.belongs`, on the marker the gate will
    check: a ``related`` answered by prefix never brings a look-alike's items)."""
    found: dict[Any, Found] = {}
    for name, ids in ids_by_kind.items():
        kind = kinds[name]
        for item in kind.derived_many(ids):
            found[_key(item)] = item
        for one in ids:
            marker = kind.marker(one)
            if marker:
                for other in related_kinds:
                    for item in other.related(marker):
                        if belongs(other.marker(item.ids), marker):
                            found[_key(item)] = item
    return found


def look_by_key(
    kinds: Mapping[str, Kind], recorded: Iterable[Resource], *, related_by_scan: bool = False
) -> tuple[list[Found], list[Found]]:
    """(recorded resources still present, items belonging to them): each kind's recorded
    items in one ``exists_many`` (``BatchGetItem``, 100 keys a call), what derives from each
    by key, and what related kinds hold for it where they can tell by key or index — or, with
    ``related_by_scan`` (crash recovery: rare, and nothing else will look), by their scan."""
    present: dict[Any, Found] = {}
    related_kinds = [
        k for k in kinds.values() if _answers_related(k) and (related_by_scan or k.related_by_key)
    ]
    by_kind: dict[str, list[Resource]] = defaultdict(list)
    for resource in recorded:
        if resource.kind in kinds:
            by_kind[resource.kind].append(resource)
    for name, resources in by_kind.items():
        for found in kinds[name].exists_many([r.ids for r in resources]):
            present[_key(found)] = found
    ids: dict[str, list[Mapping[str, Any]]] = {
        name: [r.ids for r in resources] for name, resources in by_kind.items()
    }
    belonging = _belonging(kinds, ids, related_kinds)
    for key in present:
        belonging.pop(key, None)
    return list(present.values()), list(belonging.values())


def belonging_of(
    kinds: Mapping[str, Kind], owners: Iterable[Found], searched: Collection[str] = ()
) -> list[Found]:
    """What belongs to items found in the environment (leaks): what derives from them by key,
    and what related kinds hold for them — those that answer by key or index, and those named
    in ``searched`` (kinds the namespace-wide look searched: their tables are small enough to
    scan, or they answer by a cheap listing)."""
    related_kinds = [
        kind
        for kind in kinds.values()
        if _answers_related(kind) and (kind.related_by_key or kind.name in searched)
    ]
    ids: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in owners:
        if item.kind in kinds:
            ids[item.kind].append(item.ids)
    return list(_belonging(kinds, ids, related_kinds).values())


def still_present(kinds: Mapping[str, Kind], items: list[Found]) -> list[Found]:
    """Of ``items``, those still there: one ``exists_many`` per kind (the settle loop)."""
    by_kind: dict[str, list[Found]] = defaultdict(list)
    for item in items:
        by_kind[item.kind].append(item)
    there = set()
    for name, found in by_kind.items():
        there |= {_key(f) for f in kinds[name].exists_many([f.ids for f in found])}
    return [f for f in items if _key(f) in there]


def look_namespace_wide(
    kinds: Mapping[str, Kind],
    prefix: str,
    scan_limit: int,
    result: ResidueResult,
    sizes: Mapping[str, int] | None = None,
    searched: set[str] | None = None,
) -> list[Found]:
    """Every item under ``prefix`` of the kinds that may be searched: those whose ``find`` is
    cheap, and those whose tables hold at most ``scan_limit`` items. ``searched`` (when
    given) learns the name of each kind searched."""
    found: list[Found] = []
    described: dict[str, int] = dict(sizes or {})
    for kind in sorted(kinds.values(), key=lambda k: k.sweep_order):
        if not kind.find_is_cheap:
            if scan_limit <= 0:
                continue
            tables = table_sizes(kind, described)
            big = [(name, n) for name, n in tables if n > scan_limit]
            if big or not tables:
                result.skipped_tables.extend(b for b in big if b not in result.skipped_tables)
                continue
        found.extend(kind.find(prefix))
        if searched is not None:
            searched.add(kind.name)
    return found


def check(
    kinds: Mapping[str, Kind],
    run_prefix: str,
    owner: Owner,
    *,
    recorded: Iterable[Resource] = (),
    settle: float = 3.0,
    interval: float = 0.25,
    is_kept: Callable[[Found], bool] = lambda _: False,
    remove: bool = True,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
    progress: Callable[[str], None] = lambda _: None,
    sizes: Mapping[str, int] | None = None,
) -> ResidueResult:
    """Find leftovers of ``run_prefix``, let them settle, then clean what remains (unless
    ``remove`` is off: a protected target is never written to) with what belongs to it, also
    what the service writes for a leak within ``settle`` of its removal. Items kept on purpose
    (``--keep-on-failure``) are listed apart and left for the sweeper. ``sizes``: tables'
    item counts already known (preflight described them), so the size rule costs no call."""
    result = ResidueResult()
    recorded = [r for r in recorded if r.state != "kept"]
    present, belonging = look_by_key(kinds, recorded)
    recorded_present = {_key(f) for f in present}
    own = recorded_present | {_key(f) for f in belonging}
    recorded_markers = [m for r in recorded if (m := _marker(kinds, r))]
    searched: set[str] = set()
    for item in look_namespace_wide(kinds, run_prefix, scan_limit, result, sizes, searched):
        if _key(item) in own:
            continue
        if any(belongs(item.marker, m) for m in recorded_markers):
            belonging.append(item)
        else:
            present.append(item)
        own.add(_key(item))
    for name, count in result.skipped_tables:
        progress(
            f"residue check: table {name} holds ~{count} items (> {scan_limit}); items a test "
            f"made there without the ledger are left to the sweeper"
        )
    deadline = time.monotonic() + settle
    # pragma: no mutate start (equivalent: any value no item count can equal)
    reported = -1
    # pragma: no mutate end
    while present and time.monotonic() < deadline:
        if len(present) != reported:
            reported = len(present)
            progress(
                f"residue check: {reported} item(s) present, letting them settle ({settle:g}s)"
            )
        time.sleep(interval)
        present = still_present(kinds, present)
    belonging = [f for f in belonging if not is_kept(f)]
    result.kept = [f for f in present if is_kept(f)]
    left = [f for f in present if not is_kept(f)]
    result.unfinished = [f for f in left if _key(f) in recorded_present]
    result.leaked = [f for f in left if _key(f) not in recorded_present]
    leaks = list(result.leaked)

    def of_leaks() -> list[Found]:
        """What belongs to the leaks and was not seen yet (nor kept): leaked with them."""
        new = [
            f for f in belonging_of(kinds, leaks, searched) if _key(f) not in own and not is_kept(f)
        ]
        own.update(_key(f) for f in new)
        result.leaked += new
        return new

    if not remove:
        of_leaks()  # listed, never removed
        return result
    delete = guarded_deleter(  # each item is listed on its own: no cascade
        kinds,
        owner,
        cascade=False,  # pragma: no mutate (equivalent: None is as false)
    )
    _remove(delete, leaks + result.unfinished, result.cleaned, result)
    _remove(delete, belonging, result.belonging, result)
    if leaks and settle > 0:
        progress(
            f"residue check: {len(leaks)} leaked item(s) removed; looking for what the service "
            f"still writes for them ({settle:g}s)"
        )
    deadline = time.monotonic() + settle
    while leaks:
        _remove(delete, of_leaks(), result.cleaned, result)
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return result


def _remove(
    delete: Callable[[Resource], Any], items: list[Found], into: list[Found], result: ResidueResult
) -> None:
    """Delete each item through the gate: removed ones go ``into`` their list, a refusal or a
    failure to ``result.uncleaned`` (reported, never raised past the run)."""
    for item in items:
        try:
            # pragma: no mutate start (equivalent: the deleter reads only the kind and the ids)
            delete(Resource(seq=0, kind=item.kind, ids=dict(item.ids), state="created"))
            # pragma: no mutate end
        except Exception as error:
            result.uncleaned.append((item, f"{type(error).__name__}: {error}"))
            continue
        into.append(item)


def _marker(kinds: Mapping[str, Kind], resource: Resource) -> str | None:
    kind = kinds.get(resource.kind)
    return kind.marker(resource.ids) if kind is not None else None
