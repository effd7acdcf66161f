"""Ownership guards: the one gate every delete — and every create — passes through.

A delete is allowed only when the target's marker — what its kind's ``marker(ids)`` reads
from the ids: a namespaced name, a harness-made email under the reserved test domain, a
``HarnessNamespace`` attribute — embeds a harness namespace and, when a run is given, that
namespace belongs to that run. Every delete path goes through here: ledger cleanup and crash
recovery item by item (:func:`guarded_deleter`, also the residue check's), the sweeper in
checked batches (:func:`guarded_batch_delete`) — so there is one place to audit, and a kind
cannot forget the check. A failed check raises :class:`OwnershipError`; nothing here ever
deletes by itself.

The same check stands before every create (:func:`create_gate`, asked by the ledger before it
journals an intent or calls the service): the kind must be one the run knows — else one line
naming the known kinds and where each came from — and the intent's marker must carry this
run's namespace, so nothing is created that cleanup would later refuse to delete.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.cleanup.journal import Resource
from harness.cleanup.ledger import CreateGate, CreateRefused, Outcome, OwnershipError
from harness.kinds.base import Found, Kind
from harness.namespace import Namespace, RunId, belongs, find_namespace, parse_email

__all__ = [
    "Owner",
    "OwnershipError",
    "create_gate",
    "guarded_batch_delete",
    "guarded_deleter",
]


@dataclass(frozen=True)
class Owner:
    """Whose data a delete may touch: one run's (cleanup, recovery) or any harness run's
    (the sweeper, which also checks age)."""

    run: RunId | None

    def _check(self, ns: Namespace | None, what: str, action: str = "delete") -> Namespace:
        if ns is None:
            raise OwnershipError(f"refusing to {action} {what}: it carries no harness namespace")
        if self.run is not None and ns.run != self.run:
            raise OwnershipError(
                f"refusing to {action} {what}: it belongs to run {ns.run}, not {self.run}"
            )
        return ns

    def email(self, email: str | None) -> Namespace:
        """The email must be harness-made (namespace + reserved test domain)."""
        # pragma: no mutate start (equivalent: any non-address parses to None)
        return self._check(parse_email(email or ""), f"the item of email {email!r}")
        # pragma: no mutate end

    def marker(self, value: str | None, what: str, action: str = "delete") -> Namespace:
        """A marker must embed a namespace; one that is an email address must also be under
        the reserved test domain (a harness-shaped address on a real domain is someone's)."""
        # pragma: no mutate start (equivalent: "" and "XXXX" both carry no "@" and no namespace)
        text = value or ""
        # pragma: no mutate end
        if "@" in text:
            return self._check(parse_email(text), what, action)
        return self._check(find_namespace(text), what, action)


def check(kind: Kind, ids: Mapping[str, Any], owner: Owner, action: str = "delete") -> Namespace:
    """The gate: ``kind.marker(ids)`` must carry the owner's namespace."""
    marker = kind.marker(ids)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(ids.items()))
    return owner.marker(marker, f"{kind.name}({shown})", action)


class _Gate(CreateGate):
    def __init__(
        self,
        kinds: Mapping[str, Kind],
        owner: Owner,
        origins: Callable[[], Mapping[str, str]],
    ) -> None:
        self.kinds = kinds
        self.owner = owner
        self.origins = origins

    def kind(self, name: str) -> Kind:
        kind = self.kinds.get(name)
        if kind is None:
            raise CreateRefused(unknown_kind(name, self.kinds, self.origins()))
        return kind

    def admit(self, name: str, ids: Mapping[str, Any]) -> None:
        kind = self.kind(name)
        try:
            check(kind, ids, self.owner, action="create")
        except OwnershipError as error:
            raise CreateRefused(
                f"{error} (the kind's marker is what cleanup checks before deleting it); name "
                f"it with namespace.name() or namespace.email()"
            ) from None


def unknown_kind(name: str, kinds: Mapping[str, Kind], origins: Mapping[str, str]) -> str:
    """One line: no such kind; the known ones and where each came from; the likeliest."""
    known = ", ".join(f"{k} ({origins.get(k, 'unknown origin')})" for k in sorted(kinds))
    close = difflib.get_close_matches(name, sorted(kinds))  # the likeliest first
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"no resource kind {name!r}: nothing was created or sent; known kinds: "
        f"{known or 'none'}{hint}"
    )


def create_gate(
    kinds: Mapping[str, Kind],
    owner: Owner,
    origins: Callable[[], Mapping[str, str]] = dict,
) -> CreateGate:
    """The ledger's gate before every create (and before it journals anything): the kind is
    one of ``kinds`` — else :class:`CreateRefused` listing them with ``origins()`` (where each
    came from: declared in the profile, an adapter module, an entry point, the engine) — and
    ``kind.marker(ids)`` carries ``owner``'s run namespace, as a delete's must."""
    return _Gate(kinds, owner, origins)


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
                f"unknown resource kind {resource.kind!r}; not deleting it (this profile "
                f"declares no kind of that name, nor do its adapters)"
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
