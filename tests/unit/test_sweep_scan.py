"""The sweeper's scan machinery as pure logic: the read budget's token bucket on a fake clock,
rate parsing, the checkpoint file's round trip, the progress line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from harness.kinds.dynamo import Checkpoint, Progress, RateLimiter, parse_rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("rate, page", [(100, 10), (1000, 100), (50, 10), (1000, 7)])
def test_the_budget_holds_over_many_pages(rate: float, page: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    items = 0
    for _ in range(200):
        started = limiter.wait()
        clock.now += 0.0005  # the request itself: its time counts towards the next page's
        limiter.spend(limiter.cost({"ScannedCount": page, "Items": []}), started)
        items += page
    limiter.wait()  # as a scan does before it ends
    assert items / clock.now == pytest.approx(rate, rel=1e-6)


def test_segments_share_one_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    first, second = limiter.wait(), limiter.wait()  # two segments start together
    limiter.spend(50, first)
    limiter.spend(50, second)
    limiter.wait()
    assert clock.now == pytest.approx(1.0)


def test_capacity_units_are_read_from_the_answer() -> None:
    limiter = RateLimiter(10, "cu")
    assert limiter.cost({"ConsumedCapacity": {"CapacityUnits": 2.5}, "ScannedCount": 99}) == 2.5
    assert limiter.cost({"ScannedCount": 8}) == 4.0  # no report: 0.5 unit an item
    assert RateLimiter(10, "items").cost({"ScannedCount": 8, "Items": [1]}) == 8


def test_an_idle_limiter_does_not_bank_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    clock.now = 60.0  # a minute of no reads earns nothing
    limiter.spend(100, limiter.wait())
    limiter.wait()
    assert clock.now == pytest.approx(61.0)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("500", (500.0, "items")),
        ("500/s", (500.0, "items")),
        ("500 items/s", (500.0, "items")),
        ("2.5cu", (2.5, "cu")),
        ("50 CU/s", (50.0, "cu")),
        ("50rcu", (50.0, "cu")),
    ],
)
def test_rates_parse(text: str, expected: tuple[float, str]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-5", "fast", "cu", "nan", "inf", "5 bytes"])
def test_bad_rates_name_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 500 \(items/s\) or 50cu"):
        parse_rate(text)


def test_a_checkpoint_keeps_items_and_where_to_continue(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path, "staging")
    page = [{"Uid": Decimal(7), "Email": "a@x", "Blob": b"\x00\x01"}]
    checkpoint.save("users", "scope", 1, 4, items=page, last_key={"Uid": Decimal(9)}, scanned=50)
    checkpoint.save("users", "scope", 1, 4, items=[], last_key={"Uid": Decimal(12)}, scanned=50)
    state = Checkpoint(tmp_path, "staging").load("users", "scope", 1, 4)
    assert state.items == page and state.last_key == {"Uid": Decimal(12)}
    assert state.scanned == 100 and not state.done
    # Another segment, another filter, another profile: nothing to resume.
    assert Checkpoint(tmp_path, "staging").load("users", "scope", 0, 4).last_key is None
    assert Checkpoint(tmp_path, "staging").load("users", "other", 1, 4).last_key is None
    assert Checkpoint(tmp_path, "prod").load("users", "scope", 1, 4).last_key is None
    checkpoint.save("users", "scope", 1, 4, items=[], last_key=None, scanned=3)
    assert checkpoint.load("users", "scope", 1, 4).done
    checkpoint.clear()
    assert not checkpoint.exists()


def test_a_line_cut_short_resumes_from_the_page_before(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path, "p")
    checkpoint.save("t", "s", 0, 1, items=[{"k": 1}], last_key={"k": 1}, scanned=1)
    path = next(checkpoint.directory.glob("*.jsonl"))
    with path.open("a") as out:
        out.write('{"items": [{"k": 2}], "last_k')
    state = checkpoint.load("t", "s", 0, 1)
    assert state.items == [{"k": 1}] and state.last_key == {"k": 1}


def test_progress_speaks_only_for_long_sweeps_with_an_eta() -> None:
    clock = FakeClock()
    lines: list[str] = []
    progress = Progress(lines.append, every=2.0, clock=clock)
    progress.begin("users", 10_000)
    clock.now = 1.0
    progress.add(1000, 3)
    assert lines == []
    clock.now = 2.5
    progress.add(1500, 2)
    assert lines == [
        "sweep: users: scanned 2500/10000 items (25%), 5 matched, 1000 items/s, ETA 8s"
    ]
