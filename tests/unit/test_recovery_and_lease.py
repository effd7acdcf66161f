"""Crash recovery (harness/cleanup/recovery.py) and leases (harness/cleanup/lease.py) on stub
kinds and real journal files: what a claimed dead folder's recovery deletes, forgets and keeps,
the gate on the recovery path, the lease's heartbeat. Which folders are dead is the liveness
authority's (tests/unit/test_liveness.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.cleanup.journal import Journal, replay, run_dir
from harness.cleanup.lease import Lease
from harness.cleanup.ledger import OwnershipError
from harness.cleanup.liveness import Claim, Liveness, RunFolder, run_folders
from harness.cleanup.recovery import OWNER_FILE, forget, recover, write_owner
from harness.kinds.lease import LeaseInfo, lease_marker, own_holder
from tests.unit.stubs import DictKind, ns

OURS = ns(1, "aaaa")
OTHER = ns(1, "bbbb")
RUN = str(OURS.run)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def journal_run(
    state: Path,
    run_id: str,
    items: list[tuple[str, str]],
    *,
    pid: int = 0,
    base_url: str = "u",
    shard: str = "",
) -> Claim:
    """A run's folder as a dead process left it (owner.json and one journal of intents),
    claimed from the liveness authority as recovery needs it."""
    directory = run_dir(state, run_id, shard)
    directory.mkdir(parents=True)
    owner = {"host": socket.gethostname(), "pid": pid, "base_url": base_url, "shard": shard}
    (directory / OWNER_FILE).write_text(json.dumps(owner))
    journal = Journal(directory / "gw0.jsonl")
    for seq, (key, marker) in enumerate(items, 1):
        journal.append("intent", seq, kind="thing", ids={"key": key, "marker": marker})
        journal.append("created", seq, ids={})
    journal.close()
    claim = Liveness(None, state).claim_dead(RunFolder(run_id, shard, directory, owner))
    assert claim is not None
    return claim


def test_write_owner_names_this_process_and_the_target(tmp_path: Path) -> None:
    write_owner(tmp_path, RUN, "staging", "https://x", shard="s01")
    directory = run_dir(tmp_path, RUN, "s01")
    assert directory.name == f"{RUN}@s01"
    owner = json.loads((directory / OWNER_FILE).read_text())
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    assert (owner["profile"], owner["base_url"], owner["shard"]) == ("staging", "https://x", "s01")
    assert abs(owner["started"] - time.time()) < 60
    [run] = run_folders(tmp_path)
    assert (run.run_id, run.shard, run.owner) == (RUN, "s01", owner)


def test_recovery_deletes_the_dead_runs_items_and_forgets_its_journal(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("a", OURS.name("a"))
    kind.add("b", OURS.name("b"))
    run = journal_run(tmp_path, RUN, [("a", OURS.name("a")), ("b", OURS.name("b"))])
    result = recover(run, {"thing": kind})
    assert result.ok and [r.ids["key"] for r in result.deleted] == ["b", "a"]
    assert kind.store == {} and not run.folder.path.exists()


def test_recovery_path_refuses_another_runs_and_foreign_items(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("theirs", OTHER.name("t"))
    kind.add("foreign", "alice@example.com")
    items = [("theirs", OTHER.name("t")), ("foreign", "alice@example.com")]
    run = journal_run(tmp_path, RUN, items)
    result = recover(run, {"thing": kind})
    assert kind.deleted == [] and set(kind.store) == {"theirs", "foreign"}
    assert sorted(r.ids["key"] for r in result.refused) == ["foreign", "theirs"]
    assert not result.ok
    assert run.folder.path.exists()  # kept: the journal still says what is unsettled
    states = [r.state for r in replay(run.folder.path / "gw0.jsonl")]
    assert states == ["failed", "failed"]


def test_recovery_skips_settled_journals_and_releases_the_dead_runs_lease(tmp_path: Path) -> None:
    kind, lease = DictKind(), DictKind("lease")
    lease.add("l", lease_marker(RUN))
    run = journal_run(tmp_path, RUN, [])

    def delete_lease(ids: Mapping[str, Any]) -> Any:
        lease.deleted.append(dict(ids))
        return "deleted"

    lease.delete = delete_lease  # type: ignore[method-assign]
    result = recover(run, {"thing": kind, "lease": lease})
    assert result.ok and result.deleted == []
    assert lease.deleted == [{"marker": lease_marker(RUN)}]
    assert not run.folder.path.exists()  # settled: the folder is forgotten too


def test_recovery_refuses_a_lease_marker_of_another_run(tmp_path: Path) -> None:
    lease = _LeaseOf(str(OTHER.run))
    run = journal_run(tmp_path, RUN, [])
    with pytest.raises(OwnershipError, match="belongs to run"):
        recover(run, {"lease": lease})
    assert lease.deleted == []
    assert run.folder.path.exists()


def test_recovery_removes_a_dead_holders_lease_only_while_that_holder_has_it(
    tmp_path: Path,
) -> None:
    lease = LeaseStore()
    run = journal_run(tmp_path, RUN, [])
    run.lease = LeaseInfo(RUN, lease_marker(RUN), "gone-host", 77, 0.0)
    assert recover(run, {"lease": lease}).ok
    assert lease.deleted == [{"marker": lease_marker(RUN), "holder": "gone-host:77"}]


class _LeaseOf(DictKind):
    """A lease kind whose marker names another run, whatever it is asked."""

    def __init__(self, run_id: str) -> None:
        super().__init__("lease")
        self.run_id = run_id

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        return lease_marker(self.run_id)


def test_forget_settles_what_is_gone_or_unknown_and_keeps_what_is_there(tmp_path: Path) -> None:
    kind, lease = DictKind(), LeaseStore()
    kind.add("here", "plain-dave")  # refused by the gate: no namespace, still there
    items = [("here", "plain-dave"), ("gone", "plain-erin")]
    run = journal_run(tmp_path, RUN, items)
    journal = Journal(run.folder.path / "gw0.jsonl")
    journal.append("intent", 3, kind="todos", ids={"key": "typo"})  # a kind unknown here
    journal.close()
    done = forget(run, {"thing": kind, "lease": lease})
    assert [r.ids["key"] for r in done.gone] == ["gone"]
    assert [r.ids["key"] for r in done.unchecked] == ["typo"]
    assert [r.ids["key"] for r in done.present] == ["here"]
    assert run.folder.path.exists() and lease.deleted == []  # something is still there
    states = {r.ids["key"]: r.state for r in replay(run.folder.path / "gw0.jsonl")}
    assert states == {"here": "created", "gone": "deleted", "typo": "deleted"}
    del kind.store["here"]  # removed by hand
    again = forget(run, {"thing": kind, "lease": lease})
    assert [r.ids["key"] for r in again.gone] == ["here"] and not again.present
    assert not run.folder.path.exists() and lease.deleted == [{"marker": lease_marker(RUN)}]
    assert kind.deleted == []  # forgetting never deletes


# -- leases ------------------------------------------------------------------------------------


class LeaseStore(DictKind):
    """The lease kind's storage, in memory."""

    def __init__(self, leases: list[LeaseInfo] | None = None) -> None:
        super().__init__("lease")
        self.writes: list[tuple[str, float]] = []
        self._leases = leases or []

    def write(self, marker: str, duration: float) -> None:
        self.writes.append((marker, duration))
        self.store[marker] = marker

    def leases(self) -> list[LeaseInfo]:
        return self._leases

    def delete(self, ids: Mapping[str, Any]) -> Any:
        self.deleted.append(dict(ids))
        return "deleted"


def test_lease_is_written_refreshed_and_released_through_the_gate() -> None:
    store = LeaseStore()
    lease = Lease(store, RUN, shard="s01", duration=0.03)  # type: ignore[arg-type]
    assert lease.marker == f"{RUN}-s01lease"
    lease.acquire()
    time.sleep(0.2)
    lease.release()
    assert store.writes[0] == (lease.marker, 0.03)
    assert len(store.writes) >= 2  # refreshed while held
    count = len(store.writes)
    time.sleep(0.05)
    assert len(store.writes) == count  # the refresh stopped with the release
    assert store.deleted == [{"marker": lease.marker, "holder": own_holder()}]


def test_releasing_another_runs_lease_is_refused() -> None:
    store = LeaseStore()
    lease = Lease(store, RUN)  # type: ignore[arg-type]
    lease.marker = lease_marker(str(OTHER.run))
    with pytest.raises(OwnershipError, match="belongs to run"):
        lease.release()
    assert store.deleted == []


def test_recovery_of_a_shard_releases_that_shards_lease(tmp_path: Path) -> None:
    lease = LeaseStore()
    assert recover(journal_run(tmp_path, RUN, [], shard="s03"), {"lease": lease}).ok
    assert lease.deleted == [{"marker": f"{RUN}-s03lease"}]
    recover(journal_run(tmp_path, str(OTHER.run), []), {"lease": lease})
    assert lease.deleted[-1] == {"marker": f"{OTHER.run}-lease"}


def test_recovery_reads_every_journal_of_the_run(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("b", OURS.name("b"))
    run = journal_run(tmp_path, RUN, [])  # gw0: nothing unsettled
    journal = Journal(run.folder.path / "gw1.jsonl")
    journal.append("intent", 1, kind="thing", ids={"key": "b", "marker": OURS.name("b")})
    journal.close()
    assert [r.ids["key"] for r in recover(run, {"thing": kind}).deleted] == ["b"]


def test_a_lease_without_a_shard_and_its_refresh_loop() -> None:
    store = LeaseStore()
    lease = Lease(store, RUN, duration=30)  # type: ignore[arg-type]
    assert lease.marker == f"{RUN}-lease"

    class Stop:
        """Answers 'not yet' twice, then 'stop'; records how long it was asked to wait."""

        def __init__(self) -> None:
            self.waits: list[float] = []

        def wait(self, timeout: float) -> bool:
            self.waits.append(timeout)
            return len(self.waits) > 2

    writes: list[tuple[str, float]] = []

    def flaky_write(marker: str, duration: float) -> None:
        writes.append((marker, duration))
        if len(writes) == 1:
            raise ConnectionError("a missed refresh")

    store.write = flaky_write  # type: ignore[method-assign]
    lease._stop = Stop()  # type: ignore[assignment]
    lease._refresh()
    assert lease._stop.waits == [10.0, 10.0, 10.0]  # type: ignore[attr-defined]
    assert writes == [(lease.marker, 30), (lease.marker, 30)]  # retried after the failure


def test_the_refresh_runs_in_a_named_daemon_thread() -> None:
    store = LeaseStore()
    lease = Lease(store, RUN, duration=60)  # type: ignore[arg-type]
    lease.acquire()
    try:
        assert lease._thread is not None
        assert lease._thread.name == "harness-lease" and lease._thread.daemon
    finally:
        lease.release()
    assert not lease._thread.is_alive()


def test_forget_reads_every_journal_and_says_what_it_settled(tmp_path: Path) -> None:
    kind = DictKind()
    run = journal_run(tmp_path, RUN, [])  # gw0: nothing unsettled
    journal = Journal(run.folder.path / "gw1.jsonl")
    journal.append("intent", 1, kind="thing", ids={"key": "gone", "marker": OURS.name("g")})
    journal.close()
    done = forget(run, {"thing": kind})
    assert [r.ids["key"] for r in done.gone] == ["gone"]  # found past gw0's settled journal
    assert not run.folder.path.exists()  # everything settled: the folder is forgotten whole


def test_forget_marks_each_settled_line_as_forgotten(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("here", OURS.name("h"))
    run = journal_run(tmp_path, RUN, [("here", OURS.name("h")), ("gone", OURS.name("g"))])
    forget(run, {"thing": kind})
    settled = {r.ids["key"]: r for r in replay(run.folder.path / "gw0.jsonl")}
    assert (settled["gone"].state, settled["gone"].error) == ("deleted", "forgotten")


def test_forget_refuses_a_lease_marker_of_another_run(tmp_path: Path) -> None:
    run = journal_run(tmp_path, RUN, [])
    lease = _LeaseOf(str(OTHER.run))
    with pytest.raises(OwnershipError, match="belongs to run"):
        forget(run, {"lease": lease})
    assert lease.deleted == []


def test_an_owner_file_without_a_shard_says_so(tmp_path: Path) -> None:
    write_owner(tmp_path, RUN, "staging", "https://x")
    owner = json.loads((run_dir(tmp_path, RUN) / OWNER_FILE).read_text())
    assert owner["shard"] == ""
