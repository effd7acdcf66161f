"""The sweeper's scans as the CLI builds them (``sweeper.scan_control``) and as the plan uses
them: in segments, within a read budget, with a progress line, resumed from a checkpoint after
a sweep was cut short (or started over when asked) — on an in-memory table that answers
through its client, as DynamoDB's scans do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from harness.cleanup.sweeper import plan, scan_control
from harness.config import Profile
from harness.kinds.declared import DeclaredKind
from harness.kinds.dynamo import Checkpoint, ScanControl
from tests.unit.fake_client import ClientTable
from tests.unit.fake_table import FakeAws
from tests.unit.stubs import NOW, DictKind, ns

DEAD = ns(5, "dead")
OTHER_DEAD = ns(7, "gone")
PROFILE = Profile(name="staging")


def notes(count: int = 6, page: int = 2) -> ClientTable:
    """``count`` notes of two dead runs, and one item that is not the harness's."""
    items: list[dict[str, Any]] = [
        {"id": f"n{i}", "Tag": (DEAD if i % 2 else OTHER_DEAD).name(f"n{i}"), "body": "x"}
        for i in range(count)
    ]
    items.insert(3, {"id": "alice", "Tag": "alice@example.com"})
    return ClientTable(["id"], items, page=page)


def note_kind(table: ClientTable) -> DeclaredKind:
    aws: Any = FakeAws(notes=table)
    return DeclaredKind("note", PROFILE, aws, table="notes", key=["id"], marker="Tag")


def sweep_ids(table: ClientTable, control: ScanControl) -> list[str]:
    sweep = plan(
        {"note": note_kind(table)}, older_than=3600, alive={}, now=NOW.timestamp(), scan=control
    )
    return sorted(str(i.ids["id"]) for run in sweep.to_delete.values() for i in run.items)


ALL = [f"n{i}" for i in range(6)]


def test_by_default_one_segment_whole_pages_no_budget_no_progress_no_checkpoint() -> None:
    table = notes(page=3)
    control = scan_control()
    assert sweep_ids(table, control) == ALL
    scans = table.client_calls("client.scan")
    assert len(scans) == 3 and control.calls == 3 and control.scanned == 7
    for call in scans:
        assert not {"Segment", "TotalSegments", "Limit", "ReturnConsumedCapacity"} & set(call)
    assert table.client_calls("describe_table") == []  # no progress line: no size asked
    assert control.checkpoint is None and control.limiter is None


def test_segments_split_the_scan_and_find_everything() -> None:
    table = notes()
    assert sweep_ids(table, scan_control(segments=3)) == ALL
    scans = table.client_calls("client.scan")
    assert {(c["Segment"], c["TotalSegments"]) for c in scans} == {(0, 3), (1, 3), (2, 3)}


def test_a_page_size_caps_each_read() -> None:
    table = notes(page=100)
    control = scan_control(page_size=2)
    assert sweep_ids(table, control) == ALL
    assert [c["Limit"] for c in table.client_calls("client.scan")] == [2, 2, 2, 2]


@pytest.mark.parametrize(
    "rate, spent, limit", [((1000.0, "items"), 7.0, 5000), ((1000.0, "cu"), 7 / 4, 10_000)]
)
def test_a_read_budget_is_paid_in_its_unit_by_every_page(
    rate: tuple[float, str], spent: float, limit: int
) -> None:
    table = notes(page=100)
    control = scan_control(max_rate=rate)
    assert sweep_ids(table, control) == ALL
    [call] = table.client_calls("client.scan")
    assert call["ReturnConsumedCapacity"] == "TOTAL" and call["Limit"] == limit
    assert control.limiter is not None
    assert (control.limiter.rate, control.limiter.unit) == rate
    assert control.limiter.spent == pytest.approx(spent)


def test_the_progress_line_goes_to_the_given_writer_with_the_tables_size() -> None:
    table = notes()
    lines: list[str] = []
    control = scan_control(progress=lines.append)
    assert control.progress is not None
    control.progress._every = 0.0  # every page speaks (a real sweep: one line in 2 s)
    assert sweep_ids(table, control) == ALL
    assert len(table.client_calls("describe_table")) == 1
    assert lines[0].startswith("sweep: fake: scanned 2/7 items (29%), 2 matched, ")
    assert lines[-1].startswith("sweep: fake: scanned 7/7 items (100%), 6 matched, ")


def interrupted(table: ClientTable, state_dir: Path, profile: str = "staging") -> None:
    """A sweep cut short at its third page (the first two are in the checkpoint)."""
    table.fail_at_scan = 2
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        sweep_ids(table, scan_control(state_dir=state_dir, profile=profile))
    table.calls.clear()


def test_a_sweep_cut_short_resumes_where_it_stopped(tmp_path: Path) -> None:
    table = notes()
    interrupted(table, tmp_path)
    # the items the first two pages matched come from the checkpoint, not a second read
    assert sweep_ids(table, scan_control(state_dir=tmp_path, profile="staging")) == ALL
    starts = [c.get("ExclusiveStartKey") for c in table.client_calls("client.scan")]
    assert starts == [{"at": 4}, {"at": 6}]
    # a finished sweep's checkpoint (kept until the CLI clears it) answers with no read
    table.calls.clear()
    assert sweep_ids(table, scan_control(state_dir=tmp_path, profile="staging")) == ALL
    assert table.client_calls("client.scan") == []


def test_restart_drops_the_checkpoint_and_reads_from_the_start(tmp_path: Path) -> None:
    table = notes()
    interrupted(table, tmp_path)
    control = scan_control(state_dir=tmp_path, profile="staging", restart=True)
    assert sweep_ids(table, control) == ALL
    assert len(table.client_calls("client.scan")) == 4
    assert "ExclusiveStartKey" not in table.client_calls("client.scan")[0]


def test_a_checkpoint_belongs_to_its_profile(tmp_path: Path) -> None:
    table = notes()
    interrupted(table, tmp_path, profile="staging")
    assert sweep_ids(table, scan_control(state_dir=tmp_path, profile="prod")) == ALL
    assert "ExclusiveStartKey" not in table.client_calls("client.scan")[0]
    # without a profile the checkpoint is the unnamed one's
    sweep_ids(notes(), scan_control(state_dir=tmp_path / "bare"))
    assert Checkpoint(tmp_path / "bare", "").exists()


# -- which kinds get the scan control ------------------------------------------------------


class Opaque:
    """A ``find`` whose signature cannot be read (a C-implemented or proxied callable):
    it is asked the plain way, without the scan control."""

    __signature__ = "unreadable"  # inspect.signature raises TypeError on it

    def __init__(self, kind: DictKind) -> None:
        self.kind = kind
        self.prefixes: list[str] = []

    def __call__(self, prefix: str) -> list[Any]:
        self.prefixes.append(prefix)
        return DictKind.find(self.kind, prefix)


def test_the_control_goes_to_kinds_that_take_it_and_only_to_them() -> None:
    table = notes()
    users, opaque = DictKind("user", sweep_order=10), DictKind("session", sweep_order=20)
    users.add("u", DEAD.email("a"))
    opaque.add("s", DEAD.name("s"))
    opaque_find = Opaque(opaque)
    opaque.find = opaque_find  # type: ignore[method-assign]
    control = scan_control(segments=2)
    kinds = {"note": note_kind(table), "user": users, "session": opaque}
    sweep = plan(kinds, older_than=3600, alive={}, now=NOW.timestamp(), scan=control)
    assert sweep.item_count == 8 and opaque_find.prefixes == ["itest-"]
    assert control.calls == len(table.client_calls("client.scan")) > 0
    assert table.client_calls("client.scan")[0]["ExpressionAttributeValues"] == {":p": "itest-"}


def test_without_a_control_a_kind_scans_the_plain_way() -> None:
    table = notes()
    sweep = plan({"note": note_kind(table)}, older_than=3600, alive={}, now=NOW.timestamp())
    assert sweep.item_count == 6
    assert table.client_calls("client.scan") == [] and len(table.client_calls("scan")) == 3


def test_a_foreign_item_does_not_end_its_kinds_plan() -> None:
    """The ownership gate keeps an item out; the kind's items after it are still planned."""
    kind = DictKind("user")
    kind.add("a", f"{OTHER_DEAD.name('x')}@gmail.com")  # harness-shaped, a real domain
    kind.add("b", DEAD.email("b"))
    sweep = plan({"user": kind}, older_than=3600, alive={}, now=NOW.timestamp())
    assert [f.ids["key"] for f in sweep.foreign] == ["a"]
    assert [f.ids["key"] for r in sweep.to_delete.values() for f in r.items] == ["b"]
