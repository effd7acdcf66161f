"""The lease kind's storage (harness/kinds/lease.py) against DynamoDB's own semantics — moto
in-process, the emulator the sandbox serves — because its safety is in its condition
expressions: a lease is taken only when free, refreshed only by its holder, taken over only
once it lapsed, and removed only while the holder judged dead still has it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from harness.cleanup.ledger import OwnershipError
from harness.config import Profile
from harness.host import this_machine
from harness.kinds.lease import LeaseInfo, LeaseKind, lease_marker, own_holder
from tests.unit.stubs import ns

RUN = str(ns(1, "aaaa").run)
TABLE = "leases"


class Tables:
    """What LeaseKind asks of the harness's Aws: a table by name."""

    def __init__(self) -> None:
        self.resource = boto3.resource("dynamodb", region_name="us-east-1")

    def table(self, name: str) -> Any:
        return self.resource.Table(name)


@pytest.fixture
def kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[LeaseKind]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws():
        tables = Tables()
        tables.resource.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "Marker", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Marker", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield LeaseKind(Profile(name="t", lease_table=TABLE), tables)  # type: ignore[arg-type]


def item(kind: LeaseKind, marker: str) -> dict[str, Any] | None:
    return kind._table().get_item(Key={"Marker": marker}).get("Item")


def put(kind: LeaseKind, marker: str, holder: str, expires: float, **extra: Any) -> None:
    kind._table().put_item(
        Item={"Marker": marker, "Holder": holder, "ExpiresAt": int(expires), **extra}
    )


def test_a_free_lease_is_taken_with_the_holders_kernel_and_pid_namespace(kind: LeaseKind) -> None:
    marker = lease_marker(RUN)
    before = time.time()
    kind.write(marker, 120)
    stored = item(kind, marker)
    assert stored is not None
    machine = this_machine()
    assert stored["Holder"] == own_holder() == f"{machine.host}:{os.getpid()}"
    assert (stored["Boot"], int(stored["PidNs"])) == (machine.boot, machine.pidns)
    assert before + 119 <= int(stored["ExpiresAt"]) <= time.time() + 121
    kind.write(marker, 300)  # its holder refreshes it
    assert int(item(kind, marker)["ExpiresAt"]) >= before + 299  # type: ignore[index]


def test_another_holders_live_lease_is_never_taken_a_lapsed_one_is(kind: LeaseKind) -> None:
    marker = lease_marker(RUN, "s01")
    put(kind, marker, "ci-b:77", time.time() + 60)
    with pytest.raises(OwnershipError, match=f"the lease {marker} is held by another process"):
        kind.write(marker, 120)
    assert item(kind, marker)["Holder"] == "ci-b:77"  # type: ignore[index]
    put(kind, marker, "ci-b:77", time.time() - 5)  # lapsed: its run is over
    kind.write(marker, 120)
    assert item(kind, marker)["Holder"] == own_holder()  # type: ignore[index]


def test_one_lease_is_read_by_key_and_parsed(kind: LeaseKind) -> None:
    marker = lease_marker(RUN, "s02")
    put(kind, marker, "ci-b:77", 1_900_000_000, Boot="b-1", PidNs=4026531836)
    assert kind.lease(marker) == LeaseInfo(
        run_id=RUN,
        marker=marker,
        host="ci-b",
        pid=77,
        expires_at=1_900_000_000.0,
        boot="b-1",
        pidns=4026531836,
    )
    assert kind.lease(lease_marker(str(ns(1, "bbbb").run))) is None
    put(kind, f"{RUN}-gw0-x", "h:1", 1)  # under the run, but no lease's marker
    assert kind.lease(f"{RUN}-gw0-x") is None
    put(kind, "not-a-harness-marker", "h:1", 1)
    assert kind.lease("not-a-harness-marker") is None


def test_a_lease_written_before_the_kernel_was_recorded_still_parses(kind: LeaseKind) -> None:
    marker = lease_marker(RUN)
    put(kind, marker, "old-host:12", 5)
    info = kind.lease(marker)
    assert info is not None and (info.boot, info.pidns, info.holder) == ("", 0, "old-host:12")


def test_leases_lists_the_runs_leases_under_a_prefix(kind: LeaseKind) -> None:
    other = str(ns(2, "bbbb").run)
    put(kind, lease_marker(RUN), "a:1", 10)
    put(kind, lease_marker(RUN, "s03"), "a:2", 20)
    put(kind, lease_marker(other), "b:3", 30)
    put(kind, f"{RUN}-gw0-x", "c:4", 40)  # not a lease
    found = sorted((x.marker, x.host, x.pid) for x in kind.leases())
    assert found == sorted(
        [
            (lease_marker(RUN), "a", 1),
            (lease_marker(RUN, "s03"), "a", 2),
            (lease_marker(other), "b", 3),
        ]
    )
    assert [x.marker for x in kind.leases(f"{other}-")] == [lease_marker(other)]
    summaries = [f.summary for f in kind.find(f"{RUN}-")]
    assert sorted(summaries) == [
        f"lease {lease_marker(RUN)} held by a:1",
        f"lease {lease_marker(RUN, 's03')} held by a:2",
    ]


def test_a_lease_is_deleted_only_while_the_holder_judged_dead_still_has_it(
    kind: LeaseKind,
) -> None:
    marker = lease_marker(RUN)
    assert kind.delete({"marker": marker}) == "absent"
    put(kind, marker, "new-run:9", time.time() + 60)  # a new run took the lapsed lease over
    assert kind.delete({"marker": marker, "holder": "gone:8"}) == "absent"
    assert item(kind, marker) is not None
    assert kind.delete({"marker": marker, "holder": "new-run:9"}) == "deleted"
    assert item(kind, marker) is None
    put(kind, marker, "x:1", 1)
    assert kind.delete({"marker": marker}) == "deleted"


def test_leases_are_swept_in_batches_and_marked_by_their_marker(kind: LeaseKind) -> None:
    markers = [lease_marker(str(ns(3, f"c{i:03d}").run)) for i in range(3)]
    for marker in markers:
        put(kind, marker, "h:1", 1)
    assert kind.delete_many([{"marker": m} for m in markers]) == 3
    assert all(item(kind, m) is None for m in markers)
    assert kind.marker({"marker": markers[0]}) == markers[0]
    assert kind.marker({}) is None and kind.marker({"marker": ""}) is None


def test_a_lease_item_missing_its_parts_reads_as_empty_never_as_made_up(kind: LeaseKind) -> None:
    """A holder is ``host:pid`` split at its last colon (a host may hold colons: an IPv6
    literal); a missing pid, expiry or namespace reads as 0 — never as a live-looking value."""
    marker = lease_marker(RUN)
    kind._table().put_item(Item={"Marker": marker, "Holder": "fe80::1:77"})
    info = kind.lease(marker)
    assert info is not None
    assert (info.host, info.pid, info.expires_at, info.boot, info.pidns) == (
        "fe80::1",
        77,
        0,
        "",
        0,
    )
    kind._table().put_item(Item={"Marker": marker, "Holder": "host-only:"})
    assert kind.lease(marker).pid == 0  # type: ignore[union-attr]
    kind._table().put_item(Item={"Marker": marker})
    assert kind.lease(marker).holder == ":0"  # type: ignore[union-attr]


def test_find_names_each_lease_as_the_sweeper_deletes_it(kind: LeaseKind) -> None:
    marker = lease_marker(RUN)
    put(kind, marker, "a:1", 10)
    [found] = kind.find(f"{RUN}-")
    assert (found.kind, found.ids, found.marker) == ("lease", {"marker": marker}, marker)
