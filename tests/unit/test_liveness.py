"""The liveness authority (harness/cleanup/liveness.py) on real files, real locks and real
processes: a folder is alive while any process holds one of its locks, or its shard's lease is
alive; dead only when neither; "cannot tell" is alive. Verdicts are per folder and per shard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.liveness import (
    LOCK_SUFFIX,
    Liveness,
    RunFolder,
    RunInUse,
    Verdict,
    held_by_others,
    hold,
    lease_alive,
    lock_holder_pids,
    run_folders,
)
from harness.host import Machine, pid_alive, this_machine
from harness.kinds.lease import LeaseInfo, lease_marker
from tests.unit.stubs import ns

RUN = str(ns(1, "aaaa").run)
OTHER = str(ns(1, "bbbb").run)
ME = Machine("here", "boot-1", 4026531836)
NOW = 1_000_000.0


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def journal(folder: Path, worker: str = "gw0") -> None:
    j = Journal(folder / f"{worker}.jsonl")
    j.append("intent", 1, kind="thing", ids={"key": "k"})
    j.close()


class Leases:
    """The lease kind's reading half, in memory (or failing, to say 'cannot tell')."""

    def __init__(self, leases: list[LeaseInfo] | None = None, broken: bool = False) -> None:
        self._leases = leases or []
        self.broken = broken
        self.asked: list[str] = []

    def leases(self, prefix: str = "itest-") -> list[LeaseInfo]:
        self.asked.append(prefix)
        if self.broken:
            raise ConnectionError("lease table unreachable")
        return [x for x in self._leases if x.marker.startswith(prefix)]

    def lease(self, marker: str) -> LeaseInfo | None:
        self.asked.append(f"get {marker}")
        if self.broken:
            raise ConnectionError("lease table unreachable")
        return next((x for x in self._leases if x.marker == marker), None)


def liveness(tmp_path: Path, leases: Leases | None = None, running: bool = False) -> Liveness:
    return Liveness(
        leases,  # type: ignore[arg-type]
        tmp_path,
        clock=lambda: NOW,
        machine=ME,
        is_running=lambda pid: running,
    )


def lease(
    run_id: str = RUN, shard: str = "", *, expires: float = NOW + 60, **kw: object
) -> LeaseInfo:
    fields = {"host": "there", "pid": 4242, "boot": "", "pidns": 0, **kw}
    return LeaseInfo(run_id, lease_marker(run_id, shard), expires_at=expires, **fields)  # type: ignore[arg-type]


# -- the lock -------------------------------------------------------------------------------------


def test_hold_makes_the_folder_writes_the_pid_and_refuses_a_second_holder(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN, "s01")
    held = hold(folder, "s01main")
    assert (folder / f"s01main{LOCK_SUFFIX}").read_text() == f"{os.getpid()}\n"
    assert lock_holder_pids(folder) == {"s01main": os.getpid()}
    with pytest.raises(RunInUse, match="locked by a live process"):
        hold(folder, "s01main")  # a second run with the same id and shard
    other = hold(folder, "s01gw0")  # a worker of the same run has its own lock
    held.release()
    held.release()  # twice is harmless
    again = hold(folder, "s01main")
    again.release()
    other.release()


def test_a_refused_holder_changes_nothing_in_the_lock_file(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    held = hold(folder, "main")
    before = (folder / "main.lock").read_bytes()
    with pytest.raises(RunInUse):
        hold(folder, "main")
    assert (folder / "main.lock").read_bytes() == before
    held.release()


def test_the_kernel_drops_a_killed_holders_lock(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    journal(folder, "main")
    code = (
        "import sys, time; from pathlib import Path;"
        "from harness.cleanup.liveness import hold;"
        f"hold(Path({str(folder)!r}), 'main'); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        [found] = run_folders(tmp_path)
        assert liveness(tmp_path).verdict(found).alive
        assert liveness(tmp_path).verdict(found).why == "a process on this machine holds its lock"
        assert lock_holder_pids(folder) == {"main": child.pid}
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not liveness(tmp_path).verdict(found).alive  # no pid file consulted: the lock is free


def test_a_journal_without_its_lock_file_is_judged_by_a_lock_made_for_it(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    journal(folder, "gw3")  # written by an older harness, or copied here
    [found] = run_folders(tmp_path)
    assert [p.name for p in found.lock_files()] == ["gw3.lock"]
    claim = liveness(tmp_path).claim_dead(found)
    assert claim is not None and (folder / "gw3.lock").exists()
    with pytest.raises(RunInUse):  # while claimed, no process can take that lock
        hold(folder, "gw3")
    claim.release()


def test_any_held_lock_of_a_folder_keeps_it_alive(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    journal(folder, "main")
    journal(folder, "gw0")
    worker = hold(folder, "gw1")  # the controller died; one worker still cleans up
    [found] = run_folders(tmp_path)
    assert liveness(tmp_path).claim_dead(found) is None
    hold(folder, "main").release()  # a failed claim holds nothing afterwards
    worker.release()
    claim = liveness(tmp_path).claim_dead(found)
    assert claim is not None
    with pytest.raises(RunInUse):
        hold(folder, "main")  # a run starting in a claimed folder is refused
    claim.release()
    claim.release()


def test_a_lock_that_cannot_be_opened_is_alive(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    journal(folder)
    (folder / f"gw0{LOCK_SUFFIX}").mkdir()  # opening it fails: cannot tell
    [found] = run_folders(tmp_path)
    assert liveness(tmp_path).claim_dead(found) is None
    assert liveness(tmp_path).verdict(found).alive


# -- folders ---------------------------------------------------------------------------------------


def test_run_folders_parse_shards_owners_and_skip_what_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "runs" / "itest-garbage").mkdir(parents=True)
    (tmp_path / "runs" / "other").mkdir()
    (tmp_path / "runs" / f"{OTHER}-file").write_text("")
    run_dir(tmp_path, RUN, "s02").mkdir()
    (run_dir(tmp_path, RUN, "s02") / "owner.json").write_text('{"base_url": "u"}')
    run_dir(tmp_path, RUN).mkdir()
    (run_dir(tmp_path, RUN) / "owner.json").write_text("{not json")
    run_dir(tmp_path, OTHER).mkdir()
    (run_dir(tmp_path, OTHER) / "owner.json").write_text("[1]")
    found = run_folders(tmp_path)
    assert [(f.run_id, f.shard, f.owner) for f in found] == [
        (RUN, "", {}),
        (RUN, "s02", {"base_url": "u"}),
        (OTHER, "", {}),
    ]
    assert [f.name for f in run_folders(tmp_path, RUN)] == [RUN, f"{RUN}@s02"]
    assert run_folders(tmp_path / "nowhere") == []


def test_unsettled_counts_every_journal_of_a_folder(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    journal(folder, "gw0")
    journal(folder, "gw1")
    done = Journal(folder / "gw2.jsonl")
    done.append("intent", 1, kind="thing", ids={})
    done.append("deleted", 1)
    done.close()
    assert RunFolder(RUN, "", folder).unsettled() == 2


# -- leases ---------------------------------------------------------------------------------------


def test_the_lease_rule() -> None:
    assert lease_alive(lease(), NOW, ME)  # fresh, held elsewhere: trusted
    assert not lease_alive(lease(expires=NOW), NOW, ME)  # lapsed
    mine = lease(boot=ME.boot, pidns=ME.pidns)
    assert lease_alive(mine, NOW, ME, lambda pid: True)
    assert not lease_alive(mine, NOW, ME, lambda pid: False)  # this kernel, its process gone
    # the same host name proves nothing; another kernel or pid namespace: trust the lease
    assert lease_alive(lease(host="here"), NOW, ME, lambda pid: False)
    assert lease_alive(lease(boot="boot-2", pidns=ME.pidns), NOW, ME, lambda pid: False)
    assert lease_alive(lease(boot=ME.boot, pidns=1), NOW, ME, lambda pid: False)
    assert lease_alive(lease(boot="", pidns=0), NOW, Machine("h", "", 0), lambda pid: False)


def test_the_machine_knows_its_kernel_and_pid_namespace() -> None:
    machine = this_machine()
    assert machine.boot and machine.pidns
    assert machine.shares_pids_with(machine.boot, machine.pidns)
    assert not machine.shares_pids_with("", machine.pidns)
    assert not machine.shares_pids_with(machine.boot, 0)
    assert pid_alive(os.getpid()) and not pid_alive(dead_pid()) and not pid_alive(0)


def test_a_fresh_lease_keeps_a_lockless_folder_alive_and_names_its_holder(tmp_path: Path) -> None:
    folder = run_dir(tmp_path, RUN)
    journal(folder)  # a run of another host name on this folder: no lock here, a fresh lease
    [found] = run_folders(tmp_path)
    leases = Leases([lease()])
    assert liveness(tmp_path, leases).claim_dead(found) is None
    why = liveness(tmp_path, leases).verdict(found).why
    assert why.startswith("lease held by there:4242 until ") and why.endswith(" UTC")
    assert leases.asked[0] == f"get {lease_marker(RUN)}"  # its own shard's lease, by key
    claim = liveness(tmp_path, Leases([lease(expires=NOW - 1)])).claim_dead(found)
    assert claim is not None and claim.lease is not None and claim.lease.holder == "there:4242"
    claim.release()


def test_each_shard_is_judged_by_its_own_lease(tmp_path: Path) -> None:
    for shard in ("s01", "s02"):
        journal(run_dir(tmp_path, RUN, shard))
    leases = Leases([lease(shard="s02")])  # shard 1 died; shard 2 lives elsewhere
    s01, s02 = run_folders(tmp_path)
    live = liveness(tmp_path, leases)
    assert not live.verdict(s01).alive and live.verdict(s02).alive
    assert [c.folder.name for c in _claims(live, run_id=RUN)] == [f"{RUN}@s01"]


def _claims(live: Liveness, **kw: str) -> list:
    found = []
    for claim in live.dead_folders(**kw):
        found.append(claim)
        claim.release()
    return found


def test_an_unreadable_lease_table_is_alive(tmp_path: Path) -> None:
    journal(run_dir(tmp_path, RUN))
    [found] = run_folders(tmp_path)
    live = liveness(tmp_path, Leases(broken=True))
    assert live.claim_dead(found) is None
    assert live.verdict(found).why == "cannot read the lease table (cannot tell)"
    assert live.alive_parts(RUN)[-1] == f"{RUN} (cannot read the lease table: cannot tell)"
    with pytest.raises(ConnectionError):
        live.alive_runs()  # the sweeper must not sweep blind


def test_alive_parts_name_every_live_shard_here_and_elsewhere(tmp_path: Path) -> None:
    journal(run_dir(tmp_path, RUN, "s01"))
    held = hold(run_dir(tmp_path, RUN, "s02"), "s02gw0")
    leases = Leases([lease(shard="s03"), lease(shard="s04", expires=NOW - 1), lease(OTHER)])
    live = liveness(tmp_path, leases)
    assert live.alive_parts(RUN) == [
        f"{RUN}@s02 (a process on this machine holds its lock)",
        f"{lease_marker(RUN, 's03')} ({live._lease_alive(lease(shard='s03'))})",
    ]
    held.release()
    assert live.alive_parts(OTHER) == [f"{lease_marker(OTHER)} ({live._lease_alive(lease(OTHER))})"]
    assert liveness(tmp_path).alive_parts(RUN) == []


def test_alive_runs_for_the_sweeper(tmp_path: Path) -> None:
    held = hold(run_dir(tmp_path, RUN, "s01"), "s01main")
    journal(run_dir(tmp_path, ns(2, "cccc").run.__str__()))  # dead: not listed
    leases = Leases(
        [lease(OTHER), lease(str(ns(3, "dddd").run), expires=NOW - 5)]  # fresh, lapsed
    )
    alive = liveness(tmp_path, leases).alive_runs()
    assert alive == {
        OTHER: liveness(tmp_path)._lease_alive(lease(OTHER)),
        RUN: "a process on this machine holds its lock",
    }
    held.release()
    assert liveness(tmp_path).alive_runs() == {}


def test_dead_folders_keep_to_their_target(tmp_path: Path) -> None:
    for run_id, url in ((RUN, "https://a"), (OTHER, "https://b")):
        folder = run_dir(tmp_path, run_id)
        journal(folder)
        (folder / "owner.json").write_text(f'{{"base_url": "{url}"}}')
    live = liveness(tmp_path)
    assert [c.folder.run_id for c in _claims(live, base_url="https://a")] == [RUN]
    assert [c.folder.run_id for c in _claims(live)] == [RUN, OTHER]
    assert [c.folder.run_id for c in _claims(live, run_id=OTHER)] == [OTHER]


def test_a_live_holder_started_later_is_never_claimed(tmp_path: Path) -> None:
    """Start, kill, then a new process takes the same folder: the claim sees its lock."""
    folder = run_dir(tmp_path, RUN)
    journal(folder, "main")
    new_run = hold(folder, "main")
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        [found] = run_folders(tmp_path)
        assert liveness(tmp_path).claim_dead(found) is None
        time.sleep(0.1)
    new_run.release()


# -- details the verdicts rest on (killing what mutation testing showed unchecked) ----------------


def test_a_lock_file_is_the_holders_own_and_readable_by_others(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    held = hold(tmp_path / "run", "gw0")
    assert held.path == tmp_path / "run" / "gw0.lock" and held.fd is not None
    assert (held.path.stat().st_mode & 0o777) == (0o644 & ~umask)
    os.close(held.fd)  # closed behind its back: releasing is still quiet
    held.release()
    assert held.fd is None
    held.release()


def test_held_by_others_names_the_busy_workers_but_never_this_process_own(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    mine = hold(folder, "a0main")  # sorts first: skipping it must not end the look
    code = (
        "import sys, time; from pathlib import Path;"
        "from harness.cleanup.liveness import hold;"
        f"hold(Path({str(folder)!r}), 'gw1'); print('held', flush=True); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        (folder / "gw0.lock").write_text("")  # a worker that is done: free
        (folder / "gw2.lock").mkdir()  # cannot be opened: cannot tell, so busy
        assert held_by_others(folder, [mine.path]) == ["gw1", "gw2"]
        assert held_by_others(folder) == ["a0main", "gw1", "gw2"]  # its own counts too
    finally:
        child.kill()
        child.wait()
        mine.release()
    assert held_by_others(folder) == ["gw2"]


def test_lock_holder_pids_skip_what_they_cannot_read(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "gw0.lock").write_text("not a pid\n")
    (folder / "gw1.lock").mkdir()
    (folder / "gw2.lock").write_text("4242\n")
    assert lock_holder_pids(folder) == {"gw2": 4242}


def test_run_folders_look_past_entries_that_sort_first_and_are_no_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "itest-0-not-a-run").mkdir()  # sorts before every run id
    (runs / "itest-000").write_text("")  # a file that sorts first
    run_dir(tmp_path, RUN).mkdir()
    assert [f.run_id for f in run_folders(tmp_path)] == [RUN]


def test_a_claim_releases_quietly_even_if_a_lock_was_closed_under_it(tmp_path: Path) -> None:
    journal(run_dir(tmp_path, RUN))
    [found] = run_folders(tmp_path)
    claim = liveness(tmp_path).claim_dead(found)
    assert claim is not None
    os.close(claim._fds[0])
    claim.release()
    claim.release()


def test_the_defaults_are_this_machine_and_its_processes(tmp_path: Path) -> None:
    live = Liveness(None, tmp_path)
    assert live.machine == this_machine() and live.is_running is pid_alive


def test_the_verdicts_say_exactly_why(tmp_path: Path) -> None:
    journal(run_dir(tmp_path, RUN))
    [found] = run_folders(tmp_path)
    expires = 1_000_000.0 + 3661  # 01:01:01 past 13:46:40 UTC
    live = liveness(tmp_path, Leases([lease(expires=expires)]))
    assert live.verdict(found) == Verdict(True, "lease held by there:4242 until 14:47:41 UTC")
    dead = liveness(tmp_path, Leases([lease(expires=NOW - 1)])).verdict(found)
    assert dead == Verdict(False, "no lock held, no live lease") and dead.alive is False
    mine_gone = Leases([lease(boot=ME.boot, pidns=ME.pidns)])  # this kernel, pid gone
    assert liveness(tmp_path, mine_gone, running=False).verdict(found).alive is False
    assert liveness(tmp_path, mine_gone, running=True).verdict(found).alive is True


def test_a_runs_live_parts_never_include_another_runs_folder(tmp_path: Path) -> None:
    journal(run_dir(tmp_path, RUN))
    held = hold(run_dir(tmp_path, OTHER), "main")  # another run, alive
    try:
        assert liveness(tmp_path).alive_parts(RUN) == []
    finally:
        held.release()


def test_the_sweeper_reads_every_harness_lease(tmp_path: Path) -> None:
    leases = Leases([lease()])
    assert Liveness(leases, tmp_path).leases() == [lease()]  # type: ignore[arg-type]
    assert leases.asked == ["itest-"]  # every run's lease: the harness's own prefix


def test_dead_folders_take_an_unowned_empty_folder_of_any_target_and_keep_order(
    tmp_path: Path,
) -> None:
    """A run that died between its lock and its owner file left only a lock (and maybe a
    lease): nothing to replay, so any target's recover may take it. A folder with journals
    but no owner file (a remote worker's machine) is never taken for a target it may not be
    of. Folders of other targets before it do not stop the look."""
    early = run_dir(tmp_path, str(ns(3, "aaaa").run))  # sorts first, another target
    journal(early)
    (early / "owner.json").write_text('{"base_url": "https://elsewhere"}')
    no_owner_with_journal = run_dir(tmp_path, str(ns(2, "bbbb").run))
    journal(no_owner_with_journal)
    empty = run_dir(tmp_path, str(ns(1, "cccc").run))
    empty.mkdir(parents=True)
    (empty / "main.lock").write_text("")
    claims = _claims(liveness(tmp_path), base_url="https://t")
    assert [c.folder.path for c in claims] == [empty]
