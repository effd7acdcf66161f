"""Per-endpoint latency: route templates and exact percentiles over every sample of a run.

Owns turning the HTTP client's raw ``(method, path, ms)`` records into per-endpoint figures.
The harness does not know the service's routes, so a template is derived from each path:
a segment that is a number, a UUID, a hex string of 16+ characters or a long token-like
string (24+ characters of ``[A-Za-z0-9_-]`` with a digit in it) becomes ``{id}``, and the
query string is dropped: ``GET /users/4503599627370495/notifications?x=1`` →
``GET /users/{id}/notifications``. Samples (not percentiles) travel from workers to the
controller, so the run's percentiles are exact. It never measures anything itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")
_TOKEN = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{24,}$")
ID = "{id}"

#: ``"GET /users/{id}"`` → latency samples in milliseconds.
Samples = dict[str, list[float]]


def _is_id(segment: str) -> bool:
    return bool(
        _NUMBER.match(segment)
        or _UUID.match(segment)
        or _HEX.match(segment)
        or _TOKEN.match(segment)
    )


def route_template(path: str) -> str:
    """``/users/123/notifications?limit=5`` → ``/users/{id}/notifications``."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:  # an absolute URL to another host: keep only its path
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segments = path.split("/")
    return "/".join(ID if segment and _is_id(segment) else segment for segment in segments) or "/"


def endpoint(method: str, path: str) -> str:
    return f"{method.upper()} {route_template(path)}"


def collect(records: Iterable[tuple[str, str, float]]) -> Samples:
    """Group raw client records by endpoint, rounding samples to 0.01 ms."""
    samples: Samples = {}
    for method, path, ms in records:
        samples.setdefault(endpoint(method, path), []).append(round(float(ms), 2))
    return samples


def merge(into: Samples, other: Mapping[str, Iterable[float]]) -> Samples:
    for key, values in other.items():
        into.setdefault(key, []).extend(float(v) for v in values)
    return into


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (the value of a real sample)."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(samples: Mapping[str, Iterable[float]]) -> list[dict[str, Any]]:
    """One row per endpoint — count, p50, p95, max (ms) — slowest p95 first."""
    rows: list[dict[str, Any]] = []
    for key, values in samples.items():
        ordered = sorted(values)
        if not ordered:
            continue
        method, _, route = key.partition(" ")
        rows.append(
            {
                "method": method,
                "route": route,
                "count": len(ordered),
                "p50_ms": round(percentile(ordered, 0.50), 1),
                "p95_ms": round(percentile(ordered, 0.95), 1),
                "max_ms": round(ordered[-1], 1),
            }
        )
    rows.sort(key=lambda r: (-float(r["p95_ms"]), str(r["method"]), str(r["route"])))
    return rows
