"""Pure-logic stand-ins for the unit tests of the safety layers: a kind backed by a dict,
run ids at fixed moments, and nothing that talks to an environment."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.kinds.base import Found, Kind, Outcome
from harness.namespace import Namespace, RunId

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def run_at(hours_ago: float, suffix: str = "aaaa") -> RunId:
    moment = (NOW - timedelta(hours=hours_ago)).replace(microsecond=0)
    return RunId(started=moment, suffix=suffix)


def ns(hours_ago: float = 5, suffix: str = "aaaa", worker: str = "gw0") -> Namespace:
    return Namespace(run_at(hours_ago, suffix), worker)


class DictKind(Kind):
    """A kind whose store is a dict ``key -> marker``; ``marker(ids)`` is ``ids["marker"]``.

    Records every delete (single and batched) so a test can prove nothing was touched."""

    name = "thing"
    find_is_cheap = True

    def __init__(self, name: str = "thing", sweep_order: int = 50) -> None:
        self.__dict__["name"] = name
        self.__dict__["sweep_order"] = sweep_order
        self.store: dict[str, str] = {}
        self.deleted: list[dict[str, Any]] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.derived_of: dict[str, list[Found]] = {}
        self.related_of: dict[str, list[Found]] = {}

    def add(self, key: str, marker: str) -> Found:
        self.store[key] = marker
        return self.found(key)

    def found(self, key: str) -> Found:
        marker = self.store[key]
        return Found(self.name, {"key": key, "marker": marker}, f"{self.name} {key}", marker)

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        value = ids.get("marker")
        return None if value is None else str(value)

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        self.deleted.append(dict(ids))
        return "deleted" if self.store.pop(ids["key"], None) is not None else "absent"

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        self.batches.append([dict(one) for one in ids])
        return sum(self.store.pop(one["key"], None) is not None for one in ids)

    def find(self, prefix: str) -> list[Found]:
        return [self.found(k) for k, m in sorted(self.store.items()) if m.startswith(prefix)]

    def exists(self, ids: Mapping[str, Any]) -> Found | None:
        return self.found(ids["key"]) if ids["key"] in self.store else None

    def derived(self, ids: Mapping[str, Any]) -> list[Found]:
        return list(self.derived_of.get(ids["key"], []))

    def related(self, owner_marker: str) -> list[Found]:
        return list(self.related_of.get(owner_marker, []))
