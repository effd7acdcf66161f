"""Crash recovery (harness/cleanup/recovery.py) and leases (harness/cleanup/lease.py) on stub
kinds and real journal files: what counts as dead, the lock, the gate on the recovery path."""

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
from filelock import FileLock

from harness.cleanup.journal import Journal, replay, run_dir
from harness.cleanup.lease import DEFAULT_DURATION, Lease, alive_runs, pid_alive
from harness.cleanup.ledger import OwnershipError
from harness.cleanup.recovery import (
    OWNER_FILE,
    LocalRun,
    dead_runs,
    local_runs,
    recover,
    write_owner,
)
from harness.kinds.lease import LeaseInfo, lease_marker
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
    state: Path, run_id: str, items: list[tuple[str, str]], *, pid: int, base_url: str = "u"
) -> LocalRun:
    """A run's folder as a dead process left it: owner.json and one journal of intents."""
    directory = run_dir(state, run_id)
    directory.mkdir(parents=True)
    owner = {"host": socket.gethostname(), "pid": pid, "base_url": base_url, "shard": ""}
    (directory / OWNER_FILE).write_text(json.dumps(owner))
    journal = Journal(directory / "gw0.jsonl")
    for seq, (key, marker) in enumerate(items, 1):
        journal.append("intent", seq, kind="thing", ids={"key": key, "marker": marker})
        journal.append("created", seq, ids={})
    journal.close()
    return LocalRun(run_id, directory, owner)


def test_write_owner_names_this_process_and_the_target(tmp_path: Path) -> None:
    write_owner(tmp_path, RUN, "staging", "https://x", shard="s01")
    directory = run_dir(tmp_path, RUN, "s01")
    assert directory.name == f"{RUN}@s01"
    owner = json.loads((directory / OWNER_FILE).read_text())
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    assert (owner["profile"], owner["base_url"], owner["shard"]) == ("staging", "https://x", "s01")
    assert abs(owner["started"] - time.time()) < 60
    [run] = local_runs(tmp_path)
    assert (run.run_id, run.alive) == (RUN, True)


def test_local_runs_skips_folders_that_are_not_runs_and_tolerates_a_bad_owner(
    tmp_path: Path,
) -> None:
    (tmp_path / "runs" / "itest-garbage").mkdir(parents=True)
    (tmp_path / "runs" / "other").mkdir()
    bad = run_dir(tmp_path, RUN)
    bad.mkdir()
    (bad / OWNER_FILE).write_text("{not json")
    [run] = local_runs(tmp_path)
    assert run.run_id == RUN and run.owner == {} and not run.alive


def test_dead_runs_are_over_unsettled_and_of_this_target(tmp_path: Path) -> None:
    pid = dead_pid()
    dead = journal_run(tmp_path, RUN, [("a", OURS.name("a"))], pid=pid, base_url="https://t")
    journal_run(tmp_path, str(OTHER.run), [("b", OTHER.name("b"))], pid=os.getpid())  # alive
    settled = ns(2, "cccc")
    done = journal_run(tmp_path, str(settled.run), [], pid=pid)
    assert done.unsettled() == 0
    assert dead.unsettled() == 1 and not dead.alive
    assert [r.run_id for r in dead_runs(tmp_path)] == [RUN]
    assert [r.run_id for r in dead_runs(tmp_path, "https://t")] == [RUN]
    assert dead_runs(tmp_path, "https://elsewhere") == []


def test_a_run_on_another_host_is_never_alive_here(tmp_path: Path) -> None:
    run = LocalRun(RUN, tmp_path, {"host": "another-host", "pid": os.getpid()})
    assert not run.alive


def test_recovery_deletes_the_dead_runs_items_and_forgets_its_journal(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("a", OURS.name("a"))
    kind.add("b", OURS.name("b"))
    run = journal_run(tmp_path, RUN, [("a", OURS.name("a")), ("b", OURS.name("b"))], pid=0)
    result = recover(run, {"thing": kind})
    assert result.ok and [r.ids["key"] for r in result.deleted] == ["b", "a"]
    assert kind.store == {} and not run.directory.exists()


def test_recovery_path_refuses_another_runs_and_foreign_items(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("theirs", OTHER.name("t"))
    kind.add("foreign", "alice@example.com")
    items = [("theirs", OTHER.name("t")), ("foreign", "alice@example.com")]
    run = journal_run(tmp_path, RUN, items, pid=0)
    result = recover(run, {"thing": kind})
    assert kind.deleted == [] and set(kind.store) == {"theirs", "foreign"}
    assert sorted(r.ids["key"] for r in result.refused) == ["foreign", "theirs"]
    assert not result.ok
    assert run.directory.exists()  # kept: the journal still says what is unsettled
    states = [r.state for r in replay(run.directory / "gw0.jsonl")]
    assert states == ["failed", "failed"]


def test_recovery_skips_settled_journals_and_releases_the_dead_runs_lease(tmp_path: Path) -> None:
    kind, lease = DictKind(), DictKind("lease")
    lease.add("l", lease_marker(RUN))
    run = journal_run(tmp_path, RUN, [], pid=0)

    def delete_lease(ids: Mapping[str, Any]) -> Any:
        lease.deleted.append(dict(ids))
        return "deleted"

    lease.delete = delete_lease  # type: ignore[method-assign]
    result = recover(run, {"thing": kind, "lease": lease})
    assert result.ok and result.deleted == []
    assert lease.deleted == [{"marker": lease_marker(RUN)}]


def test_recovery_refuses_a_lease_marker_of_another_run(tmp_path: Path) -> None:
    lease = _LeaseOf(str(OTHER.run))
    run = journal_run(tmp_path, RUN, [], pid=0)
    with pytest.raises(OwnershipError, match="belongs to run"):
        recover(run, {"lease": lease})
    assert lease.deleted == []
    # the lock was released on the way out: the next recovery gets it
    assert FileLock(str(run.directory / ".recover.lock")).acquire(timeout=0)


class _LeaseOf(DictKind):
    """A lease kind whose marker names another run, whatever it is asked."""

    def __init__(self, run_id: str) -> None:
        super().__init__("lease")
        self.run_id = run_id

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        return lease_marker(self.run_id)


def test_a_second_recoverer_skips_a_run_being_recovered(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("a", OURS.name("a"))
    run = journal_run(tmp_path, RUN, [("a", OURS.name("a"))], pid=0)
    held = FileLock(str(run.directory / ".recover.lock"))
    held.acquire()
    try:
        result = recover(run, {"thing": kind})
    finally:
        held.release()
    assert result.deleted == [] and kind.deleted == [] and "a" in kind.store
    # and once free, the lock is taken and released again: a later recovery proceeds
    assert recover(run, {"thing": kind}).deleted != []
    assert kind.store == {}


# -- leases ------------------------------------------------------------------------------------


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(-1)
    assert not pid_alive(dead_pid())
    assert pid_alive(1)  # init: exists (and may not be ours to signal)


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
    assert store.deleted == [{"marker": lease.marker}]


def test_releasing_another_runs_lease_is_refused() -> None:
    store = LeaseStore()
    lease = Lease(store, RUN)  # type: ignore[arg-type]
    lease.marker = lease_marker(str(OTHER.run))
    with pytest.raises(OwnershipError, match="belongs to run"):
        lease.release()
    assert store.deleted == []


def test_alive_runs_from_leases_and_from_local_journals(tmp_path: Path) -> None:
    now = 1_000_000.0
    host = socket.gethostname()
    fresh = LeaseInfo("r-fresh", "m", "elsewhere", 1, now + 60)
    lapsed = LeaseInfo("r-lapsed", "m", "elsewhere", 1, now - 1)
    store = LeaseStore([fresh, lapsed])
    assert set(alive_runs(store, now=now)) == {"r-fresh"}  # type: ignore[arg-type]
    write_owner(tmp_path, RUN, "sandbox", "u", shard="s02")
    journal_run(tmp_path, str(OTHER.run), [], pid=dead_pid())
    alive = alive_runs(None, tmp_path, now=now)
    assert list(alive) == [RUN]
    info = alive[RUN]
    assert info.marker == f"{RUN}-s02lease" and info.host == host and info.pid == os.getpid()
    assert info.expires_at == now + DEFAULT_DURATION
    both = alive_runs(store, tmp_path, now=now)  # type: ignore[arg-type]
    assert set(both) == {"r-fresh", RUN}
    assert alive_runs(None) == {}


def test_recovery_of_a_shard_releases_that_shards_lease(tmp_path: Path) -> None:
    lease = LeaseStore()
    run = journal_run(tmp_path, RUN, [], pid=0)
    shard = LocalRun(RUN, run.directory, {**run.owner, "shard": "s03"})
    assert recover(shard, {"lease": lease}).ok
    assert lease.deleted == [{"marker": f"{RUN}-s03lease"}]
    bare = journal_run(tmp_path, str(OTHER.run), [], pid=0)
    bare = LocalRun(bare.run_id, bare.directory, {"pid": 0})  # an owner.json without a shard
    recover(bare, {"lease": lease})
    assert lease.deleted[-1] == {"marker": f"{OTHER.run}-lease"}


def test_recovery_reads_every_journal_of_the_run(tmp_path: Path) -> None:
    kind = DictKind()
    kind.add("b", OURS.name("b"))
    run = journal_run(tmp_path, RUN, [], pid=0)  # gw0: nothing unsettled
    journal = Journal(run.directory / "gw1.jsonl")
    journal.append("intent", 1, kind="thing", ids={"key": "b", "marker": OURS.name("b")})
    journal.close()
    assert [r.ids["key"] for r in recover(run, {"thing": kind}).deleted] == ["b"]


def test_local_runs_keeps_looking_past_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "runs" / "itest-0-not-a-run").mkdir(parents=True)
    write_owner(tmp_path, RUN, "sandbox", "u")
    write_owner(tmp_path, RUN, "sandbox", "u")  # again: the folder exists already
    assert [r.run_id for r in local_runs(tmp_path)] == [RUN]
    assert run_dir(tmp_path, RUN).is_dir()  # no shard: the plain run folder


def test_pid_alive_signals_nothing_and_trusts_a_permission_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[int, int]] = []

    def refuse(pid: int, signal: int) -> None:
        sent.append((pid, signal))
        raise PermissionError

    monkeypatch.setattr(os, "kill", refuse)
    assert pid_alive(4242) and sent == [(4242, 0)]  # signal 0: a probe, never a signal


def test_alive_runs_applies_the_liveness_rule_to_this_hosts_leases() -> None:
    host = socket.gethostname()
    now = time.time()
    mine_dead = LeaseInfo("r-dead", "m", host, dead_pid(), now + 60)
    mine_alive = LeaseInfo("r-alive", "m", host, os.getpid(), now + 60)
    assert set(alive_runs(LeaseStore([mine_dead, mine_alive]))) == {"r-alive"}  # type: ignore[arg-type]


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


def test_a_live_local_run_without_a_shard_holds_the_plain_lease(tmp_path: Path) -> None:
    directory = run_dir(tmp_path, RUN)
    directory.mkdir(parents=True)
    owner = {"host": socket.gethostname(), "pid": os.getpid()}  # written before shards existed
    (directory / OWNER_FILE).write_text(json.dumps(owner))
    info = alive_runs(None, tmp_path, now=0.0)[RUN]
    assert (info.run_id, info.marker, info.pid) == (RUN, f"{RUN}-lease", os.getpid())
