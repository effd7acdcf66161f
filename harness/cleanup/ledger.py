"""The ledger: what this worker created, and the cleanup that removes it.

``create(kind, intent, fn)`` journals the intent, calls ``fn`` (the real create request), then
journals the ids it returned — so a crash at any point leaves a record another process can act
on. Before anything is journaled or sent, the create gate it was given (``gate``,
:func:`harness.safety.guards.create_gate`) must accept the kind and the intent's marker, so a
typo'd kind or a name outside the run's namespace is refused with the service never called
and nothing to recover; ``fn`` must answer a mapping of ids (else :class:`CreateRefused`
naming ``fn``, and the intent stays recorded: the service may have acted). ``put(kind, item)``
is ``create`` for a row the test writes itself, through the kind's ``put``.
``cleanup(scope)`` deletes a scope's resources last-in-first-out through the one guarded
delete path it was given, retrying transient errors with backoff; "already gone" counts as
done. On a protected target (``protected`` names its profile) ``create`` refuses before
journaling or calling anything, so no factory built on the ledger can write there. When the
journal cannot be written (a full disk, a file-size limit, its folder gone), the ledger stops
creating — a create whose intent cannot be journaled is refused before its request — and
keeps cleaning what it holds in memory, recording each journal error for the report. It
knows no particular kind (``put`` asks the gate for one) and never talks to the environment
itself: only ``fn``, a kind's ``put`` and the delete path it was given do.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from harness import faultpoints
from harness.cleanup.journal import Journal, Resource

# re-exported: adapters and kinds import them from here
from harness.errors import CreateRefused as CreateRefused
from harness.errors import NotCreated as NotCreated
from harness.errors import OwnershipError as OwnershipError
from harness.safety.protect import refuse_create

if TYPE_CHECKING:
    from harness.kinds.base import Kind

Outcome = Literal["deleted", "absent"]
Deleter = Callable[[Resource], Outcome]


class JournalError(Exception):
    """The journal cannot be written, so nothing more is created (one line, naming why)."""


class CreateGate:
    """What a ledger asks before every create (:func:`harness.safety.guards.create_gate`
    builds the real one): ``kind(name)`` the kind, or :class:`CreateRefused` naming the
    known ones; ``admit(name, ids)`` refuses ids whose marker is not this run's."""

    def kind(self, name: str) -> Kind:
        raise NotImplementedError

    def admit(self, name: str, ids: Mapping[str, Any]) -> None:
        raise NotImplementedError


def describe_fn(fn: Callable[..., Any]) -> str:
    """``register() (fixtures/accounts.py:31)``: the function a create called, where it is
    (its qualified name names the fixture it is defined in)."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{name}(){where}"


@dataclass
class CleanupResult:
    deleted: list[Resource] = field(default_factory=list)
    absent: list[Resource] = field(default_factory=list)
    failed: list[Resource] = field(default_factory=list)
    refused: list[Resource] = field(default_factory=list)
    kept: list[Resource] = field(default_factory=list)
    #: Items the service wrote for the cleaned resources (recovery removes them too).
    belonging: list[Resource] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.refused

    def merge(self, other: CleanupResult) -> None:
        for name in ("deleted", "absent", "failed", "refused", "kept", "belonging"):
            getattr(self, name).extend(getattr(other, name))


@dataclass
class LedgerStats:
    created: int = 0
    cleaned: int = 0
    failed: int = 0
    kept: int = 0


class Ledger:
    def __init__(
        self,
        journal: Journal,
        delete: Deleter,
        *,
        attempts: int = 4,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        protected: str = "",
        gate: CreateGate | None = None,
    ) -> None:
        self.journal = journal
        #: The protected profile's name: every create is refused.
        self.protected = protected
        #: Asked before every create (None: a ledger that only cleans, as recovery's).
        self.gate = gate
        self._delete = delete
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        self._seq = itertools.count(1)
        self._live: dict[int, Resource] = {}
        self._lock = threading.Lock()
        self.stats = LedgerStats()
        self.kept: list[Resource] = []
        #: Why the journal cannot be written ("" while it can); every journal error, once.
        self.broken = ""
        self.journal_errors: list[str] = []
        #: Every resource this ledger was asked to create, in memory: the truth the report
        #: and the residue check fall back on when the journal could not be written.
        self.recorded: list[Resource] = []

    def create(
        self,
        kind: str,
        intent: Mapping[str, Any],
        fn: Callable[[], Mapping[str, Any]],
        scope: str = "",
    ) -> Resource:
        """Journal the intent, run ``fn``, journal its ids. On error the intent stays live:
        the create may have happened (a timeout after the server acted), so cleanup tries it.
        On a protected target (``ProtectedTargetError``), for a kind the gate does not know or
        an intent whose marker is not this run's (:class:`CreateRefused`): nothing journaled,
        ``fn`` not run. ``fn`` answering anything but a mapping of ids, or ids that carry
        another marker than the intent's checked one: :class:`CreateRefused`, the intent kept."""
        if self.protected:
            raise refuse_create(self.protected, kind)
        if not isinstance(intent, Mapping):
            raise CreateRefused(
                f"ledger.create({kind!r}, …): the intent must be a mapping of ids, e.g. "
                f"{{'username': namespace.name()}}, not {type(intent).__name__} {intent!r}"
            )
        if self.gate is not None:
            self.gate.admit(kind, intent)
        if self.broken:
            raise self._refusal(kind)
        resource = Resource(seq=next(self._seq), kind=kind, ids=dict(intent), scope=scope)
        if not self._journal("intent", resource.seq, kind=kind, ids=resource.ids, scope=scope):
            raise self._refusal(kind)
        with self._lock:
            self._live[resource.seq] = resource
            self.recorded.append(resource)
            self.stats.created += 1
        faultpoints.reach("create")
        try:
            ids = fn()
        except NotCreated:
            self._withdraw(resource)
            raise
        self._check_answer(kind, resource, fn, ids)
        resource.ids.update(ids)
        resource.state = "created"
        self._journal("created", resource.seq, ids=dict(ids))  # its intent is journaled already
        faultpoints.reach("created")
        return resource

    def _check_answer(
        self, kind: str, resource: Resource, fn: Callable[..., Any], ids: object
    ) -> None:
        """``fn`` must answer the ids to delete the resource by: a mapping whose marker (if it
        names one) is still this run's. Otherwise the intent stays live (the service may have
        acted; cleanup deletes by the intent's checked ids) and the caller hears one line."""
        if not isinstance(ids, Mapping):
            raise CreateRefused(
                f"ledger.create({kind!r}, …): {describe_fn(fn)} returned {type(ids).__name__} "
                f"{_short(ids)}, not the ids the {kind} is deleted by; return a mapping such "
                f"as reply.json() (the intent {resource.ids} is kept and cleaned up by it)"
            )
        if self.gate is not None:
            try:
                self.gate.admit(kind, {**resource.ids, **ids})
            except CreateRefused as error:
                raise CreateRefused(
                    f"ledger.create({kind!r}, …): {describe_fn(fn)} returned ids {dict(ids)} "
                    f"that the gate refuses ({error}); the intent {resource.ids} is kept and "
                    f"cleaned up by it"
                ) from None

    def _withdraw(self, resource: Resource) -> None:
        """An intent whose create certainly wrote nothing: settled in the journal, no longer
        counted or recorded."""
        self._journal("deleted", resource.seq, error="not created")
        with self._lock:
            self._live.pop(resource.seq)
            self.recorded.remove(resource)
            self.stats.created -= 1

    def put(self, kind: str, item: Mapping[str, Any], scope: str = "") -> Resource:
        """Write ``item`` the way the service would, as a recorded resource: the kind's
        ``intent(item)`` (its ids, taken from the item) is journaled and gated like any
        create, then its ``put(item)`` writes it. A kind without ``put`` is refused first."""
        if self.protected:
            raise refuse_create(self.protected, kind)
        if self.gate is None:
            raise CreateRefused(f"ledger.put({kind!r}, …): this ledger knows no kinds")
        target = self.gate.kind(kind)
        intent = target.intent(item)
        return self.create(kind, intent, lambda: target.put(item), scope)

    def _journal(self, op: str, seq: int, **data: Any) -> bool:
        """Append a journal line; on failure remember why (once per distinct error) and say
        False — the in-memory ledger goes on, only creating stops."""
        try:
            self.journal.append(op, seq, **data)
        except (OSError, ValueError) as error:  # ValueError: the file was closed under us
            message = f"journal {self.journal.path} cannot be written: {error}"
            self.broken = self.broken or message
            if message not in self.journal_errors:
                self.journal_errors.append(message)
            return False
        return True

    def _refusal(self, kind: str) -> JournalError:
        return JournalError(
            f"not creating a {kind}: {self.broken}; nothing more is created in this process "
            f"(what it created is still cleaned up); free the disk or fix the folder"
        )

    def adopt(self, resources: list[Resource]) -> None:
        """Take over unsettled resources replayed from a dead run's journal (recovery)."""
        with self._lock:
            for resource in resources:
                self._live[resource.seq] = resource
            highest = max([r.seq for r in resources] + [0])
            self._seq = itertools.count(highest + 1)

    def live(self, scope: str | None = None) -> list[Resource]:
        with self._lock:
            found = [r for r in self._live.values() if scope is None or r.scope == scope]
        return sorted(found, key=lambda r: r.seq)

    def keep(self, scope: str) -> list[Resource]:
        """Leave a scope's resources in place (for debugging); the sweeper removes them later."""
        kept = self.live(scope)
        for resource in kept:
            self._settle(resource, "kept")
        self.kept.extend(kept)
        return kept

    def cleanup(self, scope: str | None = None) -> CleanupResult:
        """Delete a scope's (or everything's) live resources, newest first."""
        result = CleanupResult()
        for resource in reversed(self.live(scope)):
            self._cleanup_one(resource, result)
        return result

    def _cleanup_one(self, resource: Resource, result: CleanupResult) -> None:
        faultpoints.reach("cleanup")
        last_error: Exception | None = None
        for attempt in range(self._attempts):
            try:
                outcome = self._delete(resource)
            except OwnershipError as error:
                resource.error = str(error)
                self._settle(resource, "failed", error=str(error))
                result.refused.append(resource)
                return
            except Exception as error:  # transient until proven otherwise: retry
                last_error = error
                if attempt + 1 < self._attempts:
                    self._sleep(self._backoff * (2**attempt))
                continue
            self._settle(resource, "deleted")
            (result.deleted if outcome == "deleted" else result.absent).append(resource)
            return
        message = f"{type(last_error).__name__}: {last_error}"
        resource.error = message
        self._settle(resource, "failed", error=message)
        result.failed.append(resource)

    def _settle(self, resource: Resource, state: str, error: str = "") -> None:
        extra = {"error": error} if error else {}
        self._journal(state, resource.seq, **extra)
        with self._lock:
            # pragma: no mutate start (equivalent: callers settle live resources only)
            self._live.pop(resource.seq, None)
            # pragma: no mutate end
            if state == "deleted":
                self.stats.cleaned += 1
            elif state == "failed":
                self.stats.failed += 1
            elif state == "kept":
                self.stats.kept += 1
        resource.state = state  # type: ignore[assignment]


def _short(value: object, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
