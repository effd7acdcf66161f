"""Ownership guards: the one gate every delete passes through.

A delete is allowed only when the target's marker — what its kind's ``marker(ids)`` reads
from the ids: a namespaced name, a harness-made email under the reserved test domain, a
``HarnessNamespace`` attribute — embeds a harness namespace and, when a run is given, that
namespace belongs to that run. Every delete path goes through here: ledger cleanup and crash
recovery item by item (:func:`guarded_deleter`, also the residue check's), the sweeper in
checked batches (:func:`guarded_batch_delete`) — so there is one place to audit, and a kind
cannot forget the check. A failed check raises :class:`OwnershipError`; nothing here ever
deletes by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.cleanup.journal import Resource
from harness.cleanup.ledger import Outcome, OwnershipError
from harness.kinds.base import Found, Kind
from harness.namespace import Namespace, RunId, belongs, find_namespace, parse_email

__all__ = ["Owner", "OwnershipError", "guarded_batch_delete", "guarded_deleter"]


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
        # pragma: no mutate start (equivalent: any non-address parses to None)
        return self._check(parse_email(email or ""), f"the item of email {email!r}")
        # pragma: no mutate end

    def marker(self, value: str | None, what: str) -> Namespace:
        """A marker must embed a namespace; one that is an email address must also be under
        the reserved test domain (a harness-shaped address on a real domain is someone's)."""
        # pragma: no mutate start (equivalent: "" and "XXXX" both carry no "@" and no namespace)
        text = value or ""
        # pragma: no mutate end
        if "@" in text:
            return self._check(parse_email(text), what)
        return self._check(find_namespace(text), what)


def check(kind: Kind, ids: Mapping[str, Any], owner: Owner) -> Namespace:
    """The gate: ``kind.marker(ids)`` must carry the owner's namespace."""
    marker = kind.marker(ids)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(ids.items()))
    return owner.marker(marker, f"{kind.name}({shown})")


def guarded_deleter(
    kinds: Mapping[str, Kind],
    owner: Owner,
    *,
    cascade: bool = True,
    on_related: Callable[[Found], None] = lambda _: None,
) -> Callable[[Resource], Outcome]:
    """The single delete path: route a journaled resource to its kind, after the gate. With
    ``cascade``, what the service wrote for it by itself (items of kinds that answer
    ``related`` whose marker *belongs* to this resource's, :func:`~harness.namespace.belongs`:
    equal, or continued after a separator — never a look-alike's, ``…-ann1`` when cleaning
    ``…-ann``) goes with it, each through the gate too; ``on_related`` hears of each one
    (the run counts them)."""
    related_kinds = [k for k in kinds.values() if type(k).related is not Kind.related]

    def delete(resource: Resource) -> Outcome:
        kind = kinds.get(resource.kind)
        if kind is None:
            raise OwnershipError(
                f"unknown resource kind {resource.kind!r}; not deleting it (is its adapter "
                f"in the profile's adapters = [...]?)"
            )
        check(kind, resource.ids, owner)
        outcome = kind.delete(resource.ids)
        marker = kind.marker(resource.ids)
        for other in related_kinds if cascade and marker else []:
            for item in other.related(str(marker)):
                if not belongs(other.marker(item.ids), marker):
                    continue  # another resource's (a look-alike name): not this one's to take
                check(other, item.ids, owner)
                if other.delete(item.ids) == "deleted":
                    on_related(item)
                    outcome = "deleted"
        return outcome

    return delete


def guarded_batch_delete(
    kinds: Mapping[str, Kind], owner: Owner, items: list[Found]
) -> dict[str, int]:
    """The sweeper's delete path: every item passes the gate first, then each kind deletes
    its share in batches. One refusal stops the whole batch before anything is deleted."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        kind = kinds.get(item.kind)
        if kind is None:
            raise OwnershipError(f"unknown resource kind {item.kind!r}; not deleting it")
        check(kind, item.ids, owner)
        if item.marker and item.marker != kind.marker(item.ids):
            raise OwnershipError(
                f"refusing to delete {item.summary}: found with marker {item.marker!r}, "
                f"but its ids say {kind.marker(item.ids)!r}"
            )
        by_kind.setdefault(item.kind, []).append(item.ids)
    return {name: kinds[name].delete_many(ids) for name, ids in by_kind.items()}
