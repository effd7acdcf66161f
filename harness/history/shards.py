"""Balanced CI shards: ``--shard I/N`` picks the I-th of N parts of the collected tests.

Owns the split (the idea of pytest-split's ``least_duration``): each test weighs its recorded
duration (the mean of its last runs, from the history store); tests with no record weigh the
mean of the known ones (1 s when none is known), so unknown tests spread evenly. Heaviest
first, each goes to the lightest shard so far (ties: the lower shard, then the node id), so
every shard of a run — each on its own runner, collecting the same tests and reading the same
history (its own run's records left out) — computes the same split. Pure.
"""

from __future__ import annotations

import argparse
import heapq
from collections.abc import Iterable, Mapping, Sequence

from harness.history.records import RunRecord

#: How many of a test's latest runs its duration is the mean of.
DURATION_RUNS = 5
UNKNOWN_DEFAULT_S = 1.0


def parse(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4); an argparse error naming the form otherwise."""
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a shard: give I/N with 1 ≤ I ≤ N, e.g. 2/4"
        )
    return i, n


def durations(runs: Iterable[RunRecord], per_test: int = DURATION_RUNS) -> dict[str, float]:
    """Each test's mean duration over its latest ``per_test`` recorded runs."""
    seen: dict[str, list[float]] = {}
    for run in sorted(runs, key=lambda r: -r.started_at):
        for record in run.results:
            times = seen.setdefault(record.nodeid, [])
            if len(times) < per_test and record.outcome != "skipped":
                times.append(record.duration_s)
    return {nodeid: sum(t) / len(t) for nodeid, t in seen.items() if t}


def split(nodeids: Sequence[str], count: int, known: Mapping[str, float]) -> list[list[str]]:
    """The tests in ``count`` shards of nearly equal expected duration (order kept within)."""
    weights = [known[n] for n in nodeids if n in known]
    unknown = sum(weights) / len(weights) if weights else UNKNOWN_DEFAULT_S
    weighted = sorted(
        ((known.get(n, unknown), n) for n in nodeids), key=lambda pair: (-pair[0], pair[1])
    )
    heap = [(0.0, index) for index in range(count)]
    assigned: dict[str, int] = {}
    for weight, nodeid in weighted:
        total, index = heapq.heappop(heap)
        assigned[nodeid] = index
        heapq.heappush(heap, (total + weight, index))
    shards: list[list[str]] = [[] for _ in range(count)]
    for nodeid in nodeids:
        shards[assigned[nodeid]].append(nodeid)
    return shards


def spread(totals: Sequence[float]) -> float:
    """max / min of the shards' durations (1.0 = perfectly even)."""
    low = min(totals)
    return max(totals) / low if low > 0 else float("inf")
