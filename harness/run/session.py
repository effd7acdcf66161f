"""The harness session of one worker: every engine object a test run needs, built once.

Owns wiring — profile, namespace, redactor, the test's trace, HTTP client, AWS clients,
the service-log lookups, resource kinds, the journal and the ledger with its single guarded
delete path and its create gate — so the pytest layer only hands these objects out. On a
protected profile each door it builds is shut for writes: the HTTP client carries the
profile's guard, the AWS clients are read-only, the ledger refuses.
Knows nothing of pytest, fixtures or suites.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.ledger import Ledger
from harness.clients.aws import Aws
from harness.clients.http import ApiClient
from harness.clients.logs import ServiceLogs
from harness.clients.trace import TestTrace
from harness.config import Profile
from harness.events.stream import LatencyRecorder
from harness.kinds.base import Kind
from harness.kinds.registry import kind_origins, load_kinds
from harness.namespace import Namespace
from harness.safety.guards import Owner, create_gate, guarded_deleter
from harness.safety.protect import http_guard
from harness.safety.redact import Redactor


class HarnessSession:
    def __init__(
        self,
        profile: Profile,
        namespace: Namespace,
        seed: int,
        state_dir: Path,
        *,
        shard: str = "",
        fsync: bool = False,
        trace: TestTrace | None = None,
    ) -> None:
        self.profile = profile
        #: The current test's trace: every request and event of the test carries it.
        self.trace = trace or TestTrace()
        self.trace.xray = profile.trace_xray
        self.shard = shard
        self.namespace = namespace
        self.seed = seed
        self.state_dir = state_dir
        self.redactor = Redactor(profile.sensitive_keys)
        self.owner = Owner(run=namespace.run)
        self._fsync = fsync
        #: publish → effect latency per event type, measured by the ``events`` fixture
        self.event_latency = LatencyRecorder()
        #: items the service wrote for a resource, deleted with it at cleanup (not leaks)
        self.related_cleaned = 0
        #: publish → seen-by-the-harness latency per event type, of every event a test saw
        self.event_seen = LatencyRecorder()

    @cached_property
    def api(self) -> ApiClient:
        return ApiClient(
            self.profile.base_url,
            str(self.namespace.run),
            self.redactor,
            guard=http_guard(self.profile),
            trace=self.trace,
        )

    @cached_property
    def aws(self) -> Aws:
        return Aws(self.profile)

    @cached_property
    def service_logs(self) -> ServiceLogs:
        """A failed test's lines in the service's log groups (its AWS client made on first
        lookup: a passing run never builds it)."""
        return ServiceLogs(
            lambda: self.aws.logs,
            self.profile.log_groups,
            self.redactor,
            wait=self.profile.log_wait,
        )

    @cached_property
    def kinds(self) -> dict[str, Kind]:
        return load_kinds(self.profile, self.aws)

    @cached_property
    def journal(self) -> Journal:
        directory = run_dir(self.state_dir, str(self.namespace.run), self.shard)
        path = directory / f"{self.namespace.worker}.jsonl"
        return Journal(path, fsync=self._fsync)

    @cached_property
    def ledger(self) -> Ledger:
        protected = self.profile.name if self.profile.is_protected else ""
        delete = guarded_deleter(self.kinds, self.owner, on_related=self._count_related)
        gate = create_gate(self.kinds, self.owner, lambda: kind_origins(self.profile))
        return Ledger(self.journal, delete, protected=protected, gate=gate)

    def _count_related(self, item: object) -> None:
        self.related_cleaned += 1

    def test_seed(self, nodeid: str, attempt: int = 1) -> int:
        """A per-test seed from the run seed, the test id and (from the second) its attempt:
        replayable with the run seed, and new data for each retry."""
        again = f":{attempt}" if attempt > 1 else ""
        digest = hashlib.sha256(f"{self.seed}:{nodeid}{again}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def close(self) -> None:
        if "journal" in self.__dict__:
            self.journal.close()
        if "api" in self.__dict__:
            self.api.close()
