"""The ledger: what this worker created, and the cleanup that removes it.

``create(kind, intent, fn)`` journals the intent, calls ``fn`` (the real create request), then
journals the ids it returned — so a crash at any point leaves a record another process can act
on. ``cleanup(scope)`` deletes a scope's resources last-in-first-out through the one guarded
delete path it was given, retrying transient errors with backoff; "already gone" counts as
done. On a protected target (``protected`` names its profile) ``create`` refuses before
journaling or calling anything, so no factory built on the ledger can write there. When the
journal cannot be written (a full disk, a file-size limit, its folder gone), the ledger stops
creating — a create whose intent cannot be journaled is refused before its request — and
keeps cleaning what it holds in memory, recording each journal error for the report. It
knows no resource kind and never talks to the environment itself.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness import faultpoints
from harness.cleanup.journal import Journal, Resource
from harness.safety.protect import refuse_create

Outcome = Literal["deleted", "absent"]
Deleter = Callable[[Resource], Outcome]


class OwnershipError(Exception):
    """A delete was refused: the target does not carry this harness's namespace or run."""


class JournalError(Exception):
    """The journal cannot be written, so nothing more is created (one line, naming why)."""


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
    ) -> None:
        self.journal = journal
        #: The protected profile's name: every create is refused.
        self.protected = protected
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
        intent: dict[str, Any],
        fn: Callable[[], dict[str, Any]],
        scope: str = "",
    ) -> Resource:
        """Journal the intent, run ``fn``, journal its ids. On error the intent stays live:
        the create may have happened (a timeout after the server acted), so cleanup tries it.
        On a protected target: ``ProtectedTargetError``, nothing journaled, ``fn`` not run."""
        if self.protected:
            raise refuse_create(self.protected, kind)
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
        ids = fn()
        resource.ids.update(ids)
        resource.state = "created"
        self._journal("created", resource.seq, ids=ids)  # its intent is journaled already
        faultpoints.reach("created")
        return resource

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
