"""DynamoDB helpers shared by the kinds: key lookups in batches, the sweeper's scans, deletes.

- :func:`batch_get`: items by key, ``BatchGetItem`` 100 keys a call (the residue check's
  cheap path: its cost grows with what the run touched, never with the table).
- :func:`scan_prefix`: every item whose marker attribute begins with a prefix — a filtered,
  projected ``Scan``, the sweeper's search (no key names a namespace). With a
  :class:`ScanControl` it runs as parallel segments (``TotalSegments``), within a read budget
  (:class:`RateLimiter`, fed by ``ReturnConsumedCapacity``), reports progress, and resumes
  from a :class:`Checkpoint` after an interruption.
- :func:`batch_delete`: ``BatchWriteItem`` 25 per call, for items already proven ours.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

# The read budget's syntax is a profile field's (sweep_max_rate): it lives in config now.
from harness.config import parse_rate as parse_rate

#: BatchGetItem's limit of keys per call.
BATCH_GET_MAX = 100


def is_condition_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def batch_get(
    table: Any,
    keys: list[dict[str, Any]],
    projection: str = "",
    names: dict[str, str] | None = None,
    *,
    consistent: bool = True,
) -> list[dict[str, Any]]:
    """The items of ``keys`` that exist (any order), ``BatchGetItem`` 100 keys a call;
    unprocessed keys are asked again with a short back-off. ``projection`` must include the
    key attributes when the caller matches items back to keys."""
    unique = list({json.dumps(k, sort_keys=True, default=str): k for k in keys}.values())
    client = table.meta.client
    items: list[dict[str, Any]] = []
    for start in range(0, len(unique), BATCH_GET_MAX):
        request: dict[str, Any] = {"Keys": unique[start : start + BATCH_GET_MAX]}
        if consistent:
            request["ConsistentRead"] = True
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        pending: dict[str, Any] = {table.name: request}
        delay = 0.05
        while pending:
            answer = client.batch_get_item(RequestItems=pending)
            items += answer.get("Responses", {}).get(table.name, [])
            pending = answer.get("UnprocessedKeys") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
    return items


# --- the sweeper's scans ---------------------------------------------------------------


class RateLimiter:
    """A read budget shared by every segment of a sweep: ``rate`` per second of ``unit``
    (``items`` — items the scans read, ``ScannedCount``; or ``cu`` — the read capacity units
    DynamoDB reports with ``ReturnConsumedCapacity``).

    Paced like a token bucket without a burst (a generic cell-rate schedule): each page is
    paid for once read — its cost moves the budget's *paid-up time* on by ``cost / rate``,
    counted from when the request started (so the request's own time is not lost, and an
    idle pause earns nothing) — and the next request, in any segment, waits until the clock
    reaches the paid-up time. A scan waits once more before it ends, so over a sweep the
    items (or units) read never exceed ``rate`` times its duration."""

    def __init__(
        self,
        rate: float,
        unit: str = "items",
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a rate budget must be above 0")
        if unit not in ("items", "cu"):
            raise ValueError(f"unit must be items or cu, not {unit!r}")
        self.rate = rate
        self.unit = unit
        self._clock = clock
        self._sleep = sleep
        self._paid_up = clock()
        self._lock = threading.Lock()
        self.spent = 0.0

    def wait(self) -> float:
        """Block until the budget is paid up; returns the time (the request's start)."""
        while True:
            now = self._clock()
            with self._lock:
                delay = self._paid_up - now
            if delay <= 1e-9:
                return now
            self._sleep(delay)

    def spend(self, amount: float, started: float | None = None) -> None:
        """Pay for a page that cost ``amount``, read by a request begun at ``started``."""
        with self._lock:
            start = self._clock() if started is None else started
            self._paid_up = max(self._paid_up, start) + amount / self.rate
            self.spent += amount

    def cost(self, page: dict[str, Any]) -> float:
        """What one Scan page cost in this budget's unit."""
        if self.unit == "items":
            return float(page.get("ScannedCount", len(page.get("Items", []))))
        consumed = page.get("ConsumedCapacity") or {}
        if "CapacityUnits" in consumed:
            return float(consumed["CapacityUnits"])
        # An endpoint that does not report capacity: an eventually consistent read of an
        # item up to 4 KB costs 0.5 unit.
        return 0.5 * float(page.get("ScannedCount", len(page.get("Items", []))))

    def page_limit(self) -> int:
        """Items per page: about five seconds of budget, at most 10,000 (DynamoDB ends a
        page at 1 MB read anyway). Each page is paid for once read and a scan repays its
        last page before it ends, so the pages' size does not bend the rate over a sweep;
        small pages only add requests — and on an emulator that seeks from the table's
        start for every page, work that grows with the square of the table."""
        per_item = 1.0 if self.unit == "items" else 0.5
        return max(10, min(10_000, int(5 * self.rate / per_item)))


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$n": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, set | frozenset):
        return {"$set": [_encode(v) for v in sorted(value, key=str)]}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$n"}:
            return Decimal(value["$n"])
        if set(value) == {"$b"}:
            return base64.b64decode(value["$b"])
        if set(value) == {"$set"}:
            return {_decode(v) for v in value["$set"]}
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass
class SegmentState:
    items: list[dict[str, Any]] = field(default_factory=list)
    last_key: dict[str, Any] | None = None
    done: bool = False
    scanned: int = 0


class Checkpoint:
    """Where a sweep's scans got to, so a sweep stopped half-way continues instead of
    starting over: one append-only file per (profile, table, filter, segment of N) under
    ``<state dir>/sweep/<profile>/``, a line per page with the items it matched and its
    ``LastEvaluatedKey``, and a last line once the segment is done. The matched items are
    kept because the sweep deletes only after its plan; a resumed sweep plans with them
    again (an item deleted since is simply absent: the delete is idempotent). :meth:`clear`
    after a sweep that completed; ``harness sweep --restart`` clears before starting."""

    def __init__(self, directory: Path, profile: str) -> None:
        self.directory = directory / "sweep" / _safe(profile)
        self._lock = threading.Lock()

    def _path(self, table: str, scope: str, segment: int, total: int) -> Path:
        digest = hashlib.sha256(scope.encode()).hexdigest()[:10]
        return self.directory / f"{_safe(table)}.{digest}.{segment}-of-{total}.jsonl"

    def load(self, table: str, scope: str, segment: int, total: int) -> SegmentState:
        state = SegmentState()
        path = self._path(table, scope, segment, total)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return state
        for line in lines:
            try:
                entry = _decode(json.loads(line))
            except ValueError:
                break  # a line cut short by the interruption: resume from the one before
            state.items += entry.get("items", [])
            state.last_key = entry.get("last_key")
            state.scanned += int(entry.get("scanned", 0))
            state.done = bool(entry.get("done"))
        return state

    def save(
        self,
        table: str,
        scope: str,
        segment: int,
        total: int,
        *,
        items: list[dict[str, Any]],
        last_key: dict[str, Any] | None,
        scanned: int,
    ) -> None:
        path = self._path(table, scope, segment, total)
        entry = {"items": items, "last_key": last_key, "scanned": scanned}
        if last_key is None:
            entry["done"] = True
        line = json.dumps(_encode(entry), separators=(",", ":")) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(line)

    def exists(self) -> bool:
        return self.directory.is_dir() and any(self.directory.iterdir())

    def clear(self) -> None:
        if self.directory.is_dir():
            for path in self.directory.glob("*.jsonl"):
                path.unlink(missing_ok=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


class Progress:
    """Counts across a sweep's scans, and a line on ``write`` (stderr) at most every
    ``every`` seconds once a sweep has run for that long: scanned/total, matched, rate, ETA.
    Short sweeps print nothing."""

    def __init__(
        self,
        write: Callable[[str], None],
        every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last = self._started
        self.table = ""
        self.total = 0
        self.scanned = 0
        self.matched = 0
        self.resumed = 0

    def begin(self, table: str, total: int) -> None:
        with self._lock:
            self.table, self.total, self.scanned, self.matched = table, total, 0, 0
            self._started = self._last = self._clock()

    def add(self, scanned: int, matched: int, *, resumed: bool = False) -> None:
        with self._lock:
            self.scanned += scanned
            self.matched += matched
            if resumed:
                self.resumed += scanned
                return
            now = self._clock()
            if now - self._last < self._every:
                return
            self._last = now
            line = self.line(now)
        self._write(line)

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        fresh = self.scanned - self.resumed
        rate = fresh / elapsed
        total = max(self.total, self.scanned)
        share = f"{self.scanned}/{total} items ({100 * self.scanned / total:.0f}%)" if total else ""
        left = max(total - self.scanned, 0)
        eta = f", ETA {_duration(left / rate)}" if rate > 0 and total else ""
        return (
            f"sweep: {self.table}: scanned {share or self.scanned}, {self.matched} matched, "
            f"{rate:.0f} items/s{eta}"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@dataclass
class ScanControl:
    """How the sweeper's scans run: ``segments`` in parallel (``TotalSegments``), within
    ``limiter``'s budget, resumable through ``checkpoint``, counted by ``progress``;
    ``page_size`` caps items read per page (``Limit``; None = DynamoDB's 1 MB pages, or what
    the budget needs for a smooth rate)."""

    segments: int = 1
    limiter: RateLimiter | None = None
    checkpoint: Checkpoint | None = None
    progress: Progress | None = None
    page_size: int | None = None
    #: Scan calls made and items read by this control's scans (benchmarks and tests).
    calls: int = 0
    scanned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _count(self, scanned: int) -> None:
        with self._lock:
            self.calls += 1
            self.scanned += scanned


def scan_prefix(
    table: Any,
    attribute: str,
    prefix: str,
    projection: str,
    names: dict[str, str] | None = None,
    *,
    scan: ScanControl | None = None,
) -> Iterator[dict]:
    """Every item whose ``attribute`` begins with ``prefix`` (the sweeper's search: a scan is
    unavoidable there, since no key names a namespace), reading only the ``projection``
    (key and marker attributes). ``names`` maps ``#placeholders`` used in ``projection`` to
    attribute names. ``scan`` runs it segmented, budgeted, resumable (see
    :class:`ScanControl`); the items then come once all segments are done."""
    kwargs: dict[str, Any] = {
        "TableName": table.name,
        "FilterExpression": "begins_with(#a, :p)",
        "ExpressionAttributeNames": {"#a": attribute, **(names or {})},
        "ExpressionAttributeValues": {":p": prefix},
        "ProjectionExpression": projection,
    }
    if scan is None:
        kwargs.pop("TableName")
        while True:
            page = table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    yield from _controlled_scan(table, kwargs, f"{attribute}\0{prefix}\0{projection}", scan)


def _controlled_scan(
    table: Any, base: dict[str, Any], scope: str, scan: ScanControl
) -> list[dict[str, Any]]:
    total = max(1, int(scan.segments))
    if scan.progress is not None:
        described = table.meta.client.describe_table(TableName=table.name)["Table"]
        scan.progress.begin(table.name, int(described.get("ItemCount", 0)))
    client = table.meta.client  # a client is thread-safe; the resource is not
    limit = scan.page_size or (scan.limiter.page_limit() if scan.limiter else None)

    def segment(number: int) -> list[dict[str, Any]]:
        state = (
            scan.checkpoint.load(table.name, scope, number, total)
            if scan.checkpoint is not None
            else SegmentState()
        )
        if scan.progress is not None and (state.scanned or state.items):
            scan.progress.add(state.scanned, len(state.items), resumed=True)
        found = list(state.items)
        if state.done:
            return found
        kwargs = dict(base)
        if total > 1:
            kwargs.update(Segment=number, TotalSegments=total)
        if limit:
            kwargs["Limit"] = limit
        if scan.limiter is not None:
            kwargs["ReturnConsumedCapacity"] = "TOTAL"
        if state.last_key is not None:
            kwargs["ExclusiveStartKey"] = state.last_key
        while True:
            started = scan.limiter.wait() if scan.limiter is not None else 0.0
            page = client.scan(**kwargs)
            items = page.get("Items", [])
            scanned = int(page.get("ScannedCount", len(items)))
            scan._count(scanned)
            if scan.limiter is not None:
                scan.limiter.spend(scan.limiter.cost(page), started)
            last_key = page.get("LastEvaluatedKey")
            if scan.checkpoint is not None:
                scan.checkpoint.save(
                    table.name,
                    scope,
                    number,
                    total,
                    items=items,
                    last_key=last_key,
                    scanned=scanned,
                )
            if scan.progress is not None:
                scan.progress.add(scanned, len(items))
            found += items
            if last_key is None:
                if scan.limiter is not None:
                    scan.limiter.wait()  # the last page is paid for too: the budget holds
                return found
            kwargs["ExclusiveStartKey"] = last_key

    if total == 1:
        return segment(0)
    with ThreadPoolExecutor(max_workers=total, thread_name_prefix="sweep-segment") as pool:
        results = list(pool.map(segment, range(total)))
    return [item for part in results for item in part]


def batch_delete(table: Any, keys: list[dict[str, Any]]) -> int:
    """Delete ``keys`` with BatchWriteItem, 25 per call, unprocessed items re-sent (boto3's
    ``batch_writer`` does both). Only for items the caller has already proven ours."""
    unique = {tuple(sorted(k.items())): k for k in keys}
    if not unique:
        return 0
    key_names = list(next(iter(unique.values())))
    with table.batch_writer(overwrite_by_pkeys=key_names) as batch:
        for key in unique.values():
            batch.delete_item(Key=key)
    return len(unique)
