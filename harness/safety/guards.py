"""Ownership guards: the one gate every delete passes through.

A delete is allowed only when the target carries this harness's namespace marker — a
harness-made email under the reserved test domain, or a ``HarnessNamespace`` attribute — and,
when a run is given, that marker belongs to that run. Cleanup, crash recovery and the sweeper
delete through this module — cleanup and recovery item by item (:func:`guarded_deleter`), the
sweeper in checked batches (:func:`guarded_batch_delete`) — so there is one place to audit.
A failed check raises :class:`OwnershipError`; nothing here ever deletes by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.cleanup.journal import Resource
from harness.cleanup.ledger import Outcome, OwnershipError
from harness.namespace import Namespace, RunId, find_namespace, parse_email

__all__ = ["Owner", "OwnershipError", "guarded_deleter"]


@dataclass(frozen=True)
class Owner:
    """Whose data a delete may touch: one run's (cleanup, recovery) or any harness run's
    (the sweeper, which also checks age)."""

    run: RunId | None

    def _check(self, ns: Namespace | None, what: str) -> Namespace:
        if ns is None:
            raise OwnershipError(f"refusing to delete {what}: it carries no harness namespace")
        if self.run is not None and ns.run != self.run:
            raise OwnershipError(
                f"refusing to delete {what}: it belongs to run {ns.run}, not {self.run}"
            )
        return ns

    def email(self, email: str | None) -> Namespace:
        """The email must be harness-made (namespace + reserved test domain)."""
        return self._check(parse_email(email or ""), f"the item of email {email!r}")

    def marker(self, value: str | None, what: str) -> Namespace:
        """A ``HarnessNamespace``-style attribute (or a name) must embed a namespace."""
        return self._check(find_namespace(value or ""), what)


class KindLike:
    """What the deleter needs of a resource kind (see :mod:`harness.kinds`)."""

    name: ClassVar[str]

    def delete(self, ids: Mapping[str, Any], owner: Owner) -> Outcome:  # pragma: no cover
        raise NotImplementedError


def guarded_deleter(kinds: Mapping[str, KindLike], owner: Owner) -> Callable[[Resource], Outcome]:
    """The single delete path: route a journaled resource to its kind with the owner check."""

    def delete(resource: Resource) -> Outcome:
        kind = kinds.get(resource.kind)
        if kind is None:
            raise OwnershipError(f"unknown resource kind {resource.kind!r}; not deleting it")
        return kind.delete(resource.ids, owner)

    return delete


def guarded_batch_delete(
    kinds: Mapping[str, Any], owner: Owner, items: list[Any]
) -> dict[str, int]:
    """The sweeper's delete path: every found item's namespace marker passes the owner check
    first, then each kind deletes its share in batches. One refusal stops the whole sweep."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        owner.marker(item.marker, item.summary)
        by_kind.setdefault(item.kind, []).append(item.ids)
    return {name: kinds[name].delete_many(ids, owner) for name, ids in by_kind.items()}
