"""The adapter contract: what a resource kind is, and what the engine asks of it.

A *kind* is one sort of thing tests create in an environment (a user, an account, a note, a
queue). An adapter — the reference service's in ``fixtures/``, or a team's own — subclasses
:class:`Kind` and implements four things: ``delete(ids)``, ``find(prefix)``,
``marker(ids)`` and, where the kind can tell, ``exists(ids)``; creating is the adapter's own
business (any signature: the ledger only needs the ids it returns). A kind whose rows a test
may write straight into the store, the way the service would (a user row of a service without
a sign-up route), also offers ``intent(item)`` and ``put(item)``: ``ledger.put(kind, item)``
journals and gates the first, then calls the second (declared DynamoDB kinds have both).

The engine, never the kind, decides whether a delete may happen: before **every** delete, on
every path (ledger cleanup, recovery, residue, sweeper, batch), it checks ``marker(ids)``
against the run's namespace (:mod:`harness.safety.guards`). A kind's own conditional delete
(delete only while the item still carries that marker) is the second line of defence.

A kind may also declare the profile settings it needs (``settings``: a table name, say); the
profile schema, ``doctor`` and preflight check exactly those. Nothing here talks to an
environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from harness.clients.aws import Aws
    from harness.config import Profile

Outcome = Literal["deleted", "absent"]


@dataclass(frozen=True)
class Setting:
    """A profile field an adapter's kind needs, e.g. ``Setting("users_table", table=True)``.

    ``table``: it names a DynamoDB table (preflight and ``doctor`` describe it);
    ``ttl_attribute``: the table must have TTL enabled on that attribute (``doctor`` checks);
    ``required``: a run cannot start without it."""

    name: str
    help: str = ""
    table: bool = False
    ttl_attribute: str = ""
    required: bool = True


@dataclass(frozen=True)
class Found:
    """An item found in the environment: its kind, the ids its kind deletes it by, a one-line
    summary, and ``marker`` — the value that carries the namespace (an email, a namespaced
    name, a ``HarnessNamespace`` attribute), which the guard checks before any delete."""

    kind: str
    ids: dict[str, Any]
    summary: str
    marker: str = ""


class Kind:
    """Base class of every resource kind. Subclasses set ``name`` and implement ``delete``,
    ``find`` and ``marker``; ``exists``, ``related``, ``derived`` and ``delete_many`` have
    defaults.

    ``self.profile`` is the resolved profile (``self.profile.setting("users_table")``),
    ``self.aws`` the run's boto3 clients (``self.aws.table(name)``)."""

    name: ClassVar[str] = ""
    #: Profile settings this kind needs (validated, and checked by doctor/preflight).
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: Sweep and residue order: lower first. Owners go before what derives from them.
    sweep_order: ClassVar[int] = 50

    def __init__(self, profile: Profile, aws: Aws) -> None:
        self.profile = profile
        self.aws = aws

    @classmethod
    def enabled(cls, profile: Profile) -> bool:
        """Whether this profile uses the kind at all (the lease kind needs a lease table)."""
        return True

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        """The value in ``ids`` (as journaled) that carries the run's namespace. The engine
        refuses to delete when it is missing or names another run."""
        raise NotImplementedError

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        """Delete one item (the engine has checked its marker). ``"absent"`` when it was
        already gone; raise :class:`~harness.safety.guards.OwnershipError` when the item now
        carries something else (the conditional delete failed and the item is still there)."""
        raise NotImplementedError

    def find(self, prefix: str) -> list[Found]:
        """Every item whose marker starts with ``prefix`` (``itest-`` for the sweeper, a run
        id). This may read the whole store: the sweeper's job, never a normal run's, unless
        ``find_is_cheap``.

        A kind that scans a table should take an optional keyword ``scan:
        ScanControl | None = None`` too and pass it on to
        :func:`~harness.kinds.dynamo.scan_prefix`: the sweeper then hands it its segments,
        read budget, checkpoint and progress line. A ``find`` without it is called as
        ``find(prefix)``."""
        raise NotImplementedError

    #: ``find`` costs O(what it finds), not O(the store) (an index, a name-prefix listing):
    #: the residue check may then use it in every run.
    find_is_cheap: ClassVar[bool] = False

    def intent(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The ids ``item`` will be deleted by (its key and marker), journaled before
        ``put(item)`` writes it; refuse (``CreateRefused``) an item that lacks them. Kinds
        without ``put`` refuse every item."""
        from harness.errors import CreateRefused

        raise CreateRefused(
            f"kind {self.name!r} has no direct write (intent/put): create it through its "
            f"service with ledger.create(kind, intent, fn), or give the kind intent(item) and "
            f"put(item)"
        )

    def put(self, item: Mapping[str, Any]) -> Mapping[str, Any]:
        """Write ``item`` as the service would, never over an existing one; answer its ids.
        Called by ``ledger.put`` only, after ``intent(item)`` was journaled and gated."""
        return self.intent(item)  # refuses, unless the kind overrides both

    def exists(self, ids: Mapping[str, Any]) -> Found | None:
        """The recorded item, looked up by key, if it is still there (the residue check's
        cheap path). The default cannot tell and answers via ``find``."""
        marker = self.marker(ids)
        if not marker:
            return None
        for found in self.find(marker):
            if all(str(found.ids.get(k)) == str(v) for k, v in ids.items() if k in found.ids):
                return found
        return None

    def exists_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
        """Of the recorded items ``ids``, those still there (the residue check asks for all
        of a kind's at once). Table-backed kinds override this with ``BatchGetItem``, 100
        keys a call (:func:`~harness.kinds.dynamo.batch_get`); the default asks ``exists``
        for each."""
        return [found for one in ids if (found := self.exists(one)) is not None]

    #: ``related`` costs O(what it finds) (a key lookup or an index query, never a scan):
    #: the residue check asks it for every recorded resource only then.
    related_by_key: ClassVar[bool] = True

    def related(self, owner_marker: str) -> list[Found]:
        """Items of this kind that carry ``owner_marker`` (a recorded resource's namespaced
        name) in their own marker: what the service wrote by itself for that resource (an
        account's session rows, its welcome note). Cleaned with it; not leaks. Declared kinds
        answer this; a code kind that cannot tell cheaply answers nothing (the default)."""
        return []

    def derived(self, ids: Mapping[str, Any]) -> list[Found]:
        """Items of *other* kinds that derive from this resource and are found by key (a
        user's welcome notification, by ``Uid`` and its id): the residue check looks them up
        without a scan, through ``derived_many``.
        Their own kind deletes them through the gate like anything else."""
        return []

    def derived_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
        """``derived`` for all of a kind's recorded resources at once: the residue check asks
        this. The default asks ``derived`` for each — one lookup (a ``Query``, ~1 ms of
        client CPU) per resource; a kind that knows the derived items' full keys overrides
        it with ``BatchGetItem``, 100 keys a call (docs/performance.md, the cost model)."""
        return [item for one in ids for item in self.derived(one)]

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        """Delete many items whose markers the engine has checked; how many were deleted.
        Kinds backed by a table override this with batched writes."""
        return sum(self.delete(one) == "deleted" for one in ids)
