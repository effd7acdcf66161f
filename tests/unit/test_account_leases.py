"""Who holds an account (harness/accounts/leases.py), against DynamoDB's own semantics — moto
in-process, the emulator the sandbox serves — and real OS locks: an account is taken only
when free, lapsed, or held by a process of this machine that is gone; a live holder's is
never taken, and a dead holder's only while that holder still has it; the holder refreshes
it, notices a takeover, and releases only its own. Without a lease table, a flock per
account: a second holder is refused, a killed one frees it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from harness.accounts.leases import Busy, Held, LocalLocks, TableLeases
from harness.accounts.spec import AccountEntry
from harness.host import this_machine
from harness.kinds.lease import own_holder
from harness.waiting import wait_until

TABLE = "leases"
ONE = AccountEntry("secretsmanager", "prod/smoke/1")
KEY = {"Marker": ONE.lease_key}


@contextlib.contextmanager
def releasing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every account leased inside is given back on leaving (while the emulator is still
    there): no refresh thread outlives its test, for a later test's process-wide signal to
    land on."""
    made: list[Held] = []
    original = Held.__init__

    def record(self: Held, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Held, "__init__", record)
    try:
        yield
    finally:
        for held in made:
            held.release()


class Tables:
    """What TableLeases asks of the harness's Aws: a table by name, and a sibling."""

    def __init__(self) -> None:
        self.resource = boto3.resource("dynamodb", region_name="us-east-1")

    def table(self, name: str) -> Any:
        return self.resource.Table(name)

    def sibling(self) -> Tables:
        return Tables()


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tables]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws(), releasing(monkeypatch):
        tables = Tables()
        tables.resource.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "Marker", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Marker", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield tables


def item(tables: Tables) -> dict[str, Any] | None:
    return tables.table(TABLE).get_item(Key=KEY, ConsistentRead=True).get("Item")


def put(tables: Tables, holder: str, expires: float, **extra: Any) -> None:
    tables.table(TABLE).put_item(Item={**KEY, "Holder": holder, "ExpiresAt": int(expires), **extra})


def leases(tables: Tables, **kwargs: Any) -> TableLeases:
    return TableLeases(tables, TABLE, "itest-20260101t000000-abcd-gw1", **kwargs)


def test_a_free_account_is_taken_signed_by_its_holder_and_released(tables: Tables) -> None:
    before = time.time()
    held = leases(tables).take(ONE)
    assert isinstance(held, Held) and held.entry == ONE
    stored = item(tables)
    assert stored is not None
    machine = this_machine()
    assert stored["Holder"] == own_holder()
    assert (stored["Boot"], int(stored["PidNs"])) == (machine.boot, machine.pidns)
    assert stored["Run"] == "itest-20260101t000000-abcd-gw1"
    assert before + 119 <= int(stored["ExpiresAt"]) <= time.time() + 121
    held.release()
    assert item(tables) is None
    held.release()  # twice is nothing


def test_a_live_holders_account_is_never_taken_and_says_who_until_when(tables: Tables) -> None:
    expires = time.time() + 60
    put(tables, "ci-b:77", expires, Boot="another-kernel", PidNs=1, Run="itest-x-gw0")
    busy = leases(tables).take(ONE)
    until = time.strftime("%H:%M:%S UTC", time.gmtime(int(expires)))
    assert busy == Busy(ONE, f"ci-b:77 (itest-x-gw0) until {until}")
    assert item(tables)["Holder"] == "ci-b:77"  # type: ignore[index]


def test_a_lapsed_lease_is_taken(tables: Tables) -> None:
    put(tables, "ci-b:77", time.time() - 1, Boot="another-kernel", PidNs=1)
    assert isinstance(leases(tables).take(ONE), Held)
    assert item(tables)["Holder"] == own_holder()  # type: ignore[index]


def _here(pid: int) -> dict[str, Any]:
    machine = this_machine()
    return {"Boot": machine.boot, "PidNs": machine.pidns, "Holder": f"{machine.host}:{pid}"}


def test_a_holder_of_this_machine_whose_process_is_gone_frees_it_at_once(tables: Tables) -> None:
    dead = _here(999_999)
    put(tables, dead.pop("Holder"), time.time() + 600, **dead)
    alive = leases(tables, is_running=lambda pid: pid != 999_999)
    assert isinstance(alive.take(ONE), Held)
    assert item(tables)["Holder"] == own_holder()  # type: ignore[index]


def test_a_holder_of_this_machine_still_running_keeps_it(tables: Tables) -> None:
    other = _here(4242)
    put(tables, other.pop("Holder"), time.time() + 600, **other)
    busy = leases(tables, is_running=lambda pid: True).take(ONE)
    assert isinstance(busy, Busy) and busy.holder.startswith(f"{this_machine().host}:4242 until")


def test_a_dead_holders_lease_is_taken_over_only_while_it_still_has_it(tables: Tables) -> None:
    dead = _here(999_999)
    put(tables, dead.pop("Holder"), time.time() + 600, **dead)

    def judged_dead_but_taken_meanwhile(pid: int) -> bool:
        put(tables, "ci-c:5", time.time() + 600, Boot="another-kernel", PidNs=1)
        return False

    busy = leases(tables, is_running=judged_dead_but_taken_meanwhile).take(ONE)
    assert busy == Busy(ONE, "another holder (it took the dead holder's lease just now)")
    assert item(tables)["Holder"] == "ci-c:5"  # type: ignore[index]


def test_the_holder_refreshes_it_and_notices_a_takeover(tables: Tables) -> None:
    held = leases(tables, duration=0.6).take(ONE)
    assert isinstance(held, Held)
    first = int(item(tables)["ExpiresAt"])  # type: ignore[index]
    wait_until(
        lambda: int(item(tables)["ExpiresAt"]) > first,  # type: ignore[index]
        timeout=10,
        description="a refresh",
    )
    assert not held.lost.is_set()
    put(tables, "ci-d:9", time.time() + 600)  # it lapsed and was taken over
    wait_until(held.lost.is_set, timeout=10, description="the takeover to be noticed")
    held.release()
    assert item(tables)["Holder"] == "ci-d:9"  # type: ignore[index]  # never another's


def test_an_unreadable_table_is_an_error_not_a_free_account(tables: Tables) -> None:
    broken = TableLeases(tables, "no-such-table", "r")
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        broken.take(ONE)


# -- local locks ----------------------------------------------------------------------


def test_a_local_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    locks = LocalLocks(tmp_path / "accounts")
    held = locks.take(ONE)
    assert isinstance(held, Held)
    busy = LocalLocks(tmp_path / "accounts").take(ONE)  # a second open file: another holder
    assert busy == Busy(ONE, f"a live process on this machine (pid {os.getpid()})")
    assert isinstance(locks.take(AccountEntry("secretsmanager", "prod/smoke/2")), Held)
    held.release()
    assert isinstance(locks.take(ONE), Held)


def test_a_killed_holders_lock_is_free_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "accounts"
    ready = tmp_path / "ready"
    code = (
        "import sys, time\nfrom pathlib import Path\n"
        "from harness.accounts.leases import LocalLocks\n"
        "from harness.accounts.spec import AccountEntry\n"
        f"held = LocalLocks(Path({str(folder)!r})).take(AccountEntry('secretsmanager', "
        f"'prod/smoke/1'))\nPath({str(ready)!r}).write_text(type(held).__name__)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_until(ready.exists, timeout=30, description="the child to hold the lock")
        assert ready.read_text() == "Held"
        busy = LocalLocks(folder).take(ONE)
        assert busy == Busy(ONE, f"a live process on this machine (pid {child.pid})")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert isinstance(LocalLocks(folder).take(ONE), Held)


def test_lock_files_are_distinct_where_names_differ_only_in_unsafe_characters() -> None:
    names = {
        LocalLocks.lock_name(AccountEntry("secretsmanager", name))
        for name in ("a/b", "a_b", "a b", "a:b")
    }
    assert len(names) == 4
    assert all(n.startswith("secretsmanager-a_b-") and "/" not in n for n in names)
    ssm = LocalLocks.lock_name(AccountEntry("ssm", "a/b"))
    assert ssm.startswith("ssm-a_b-") and ssm not in names
