"""What the declared kinds of Cognito, S3 and SQL share (harness/kinds/stores.py): one
function builds a kind from its ``type``; a store that cannot be asked at all is one FAIL row
(``unreachable`` when its endpoint does not answer), and preflight stops on the first FAIL
with one line naming the fix — exit 7 for a store that does not answer, 8 for the rest; the
sweeper's paged listing pays its read budget, saves each page to its checkpoint, resumes
after the last saved page and counts its progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoRegionError

from harness.clients.aws import Aws
from harness.config import ConfigError, Profile, TargetError
from harness.kinds.cognito import CognitoKind
from harness.kinds.declared import DeclaredKind
from harness.kinds.dynamo import Checkpoint, Progress, RateLimiter, ScanControl
from harness.kinds.registry import declared_kind
from harness.kinds.s3 import S3Kind
from harness.kinds.sql import SqlKind
from harness.kinds.stores import (
    FAIL,
    OK,
    WARN,
    StoreCheck,
    StoreKind,
    paged,
    preflight,
    store_checks,
)
from tests.unit.stubs import DictKind

PROFILE = Profile(name="t", protected=False)


class Failing(StoreKind):
    """A store kind whose checks raise ``error`` (or answer ``rows``)."""

    def __init__(self, error: Exception | None = None, rows: list[StoreCheck] | None = None):
        super().__init__("thing", PROFILE, None, sweep_order=7)  # type: ignore[arg-type]
        self.error = error
        self.rows = rows or []

    def checks(self) -> list[StoreCheck]:
        if self.error is not None:
            raise self.error
        return self.rows


def test_declared_kind_builds_each_type() -> None:
    specs: dict[str, tuple[dict[str, Any], type]] = {
        "cognito": ({"type": "cognito", "user_pool_id": "p", "marker": "username"}, CognitoKind),
        "s3": ({"type": "s3", "bucket": "b", "marker": "key"}, S3Kind),
        "sql": (
            {"type": "sql", "url_variable": "U", "table": "t", "key": "id", "marker": "m"},
            SqlKind,
        ),
        "dynamodb": ({"type": "dynamodb", "table": "t", "key": "k", "marker": "k"}, DeclaredKind),
        "default": ({"table": "t", "key": ["k"], "marker": "k"}, DeclaredKind),
    }
    for name, (spec, cls) in specs.items():
        kind = declared_kind(name, spec, PROFILE, Aws(PROFILE))
        assert type(kind) is cls and kind.name == name and kind.sweep_order == 50, name


def test_a_store_kind_is_named_and_ordered_per_instance() -> None:
    kind = Failing()
    assert (kind.name, kind.sweep_order, kind.store_sizes()) == ("thing", 7, [])
    assert StoreKind.name == "" and StoreKind.sweep_order == 50
    assert StoreKind("x", PROFILE, None).sweep_order == 50  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        StoreKind("x", PROFILE, None).checks()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "detail", "fix", "unreachable"),
    [
        (
            ConfigError("$X is not set: export it"),
            "cannot be checked",
            "$X is not set: export it",
            False,
        ),
        (
            TargetError("the database does not answer"),
            "cannot be checked",
            "the database does not answer",
            True,
        ),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            'EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:1"',
            "check aws_endpoint_url and the credentials of [t]",
            True,
        ),
        (
            NoRegionError(),
            "NoRegionError: You must specify a region.",
            "check aws_endpoint_url and the credentials of [t]",
            False,
        ),
    ],
)
def test_a_store_that_cannot_be_asked_is_one_fail_row(
    error: Exception, detail: str, fix: str, unreachable: bool
) -> None:
    (row,) = store_checks(Failing(error))
    assert row == StoreCheck("kind thing", FAIL, detail, fix, unreachable)
    with pytest.raises(ConfigError) as caught:
        preflight({"thing": Failing(error)})
    assert type(caught.value) is (TargetError if unreachable else ConfigError)  # exit 7, or 8
    assert str(caught.value) == f"kind thing: {detail}; {fix}"


def test_preflight_stops_at_the_first_fail_only() -> None:
    rows = [StoreCheck("kind thing", OK, "fine"), StoreCheck("kind thing marker", WARN, "slow")]
    preflight({"thing": Failing(rows=rows), "other": DictKind()})  # no FAIL: no error
    failing = [*rows, StoreCheck("kind thing x", FAIL, "gone", "make it", unreachable=False)]
    with pytest.raises(ConfigError, match=r"^kind thing x: gone; make it$") as caught:
        preflight({"thing": Failing(rows=failing)})
    assert type(caught.value) is ConfigError  # not the target's (exit 7)
    assert store_checks(Failing(rows=rows)) == rows


class Pages:
    """A listing of ``pages`` (lists of items); records the tokens it was asked with."""

    def __init__(self, *pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.asked: list[Any] = []

    def __call__(self, token: Any) -> tuple[list[dict[str, Any]], Any, int]:
        self.asked.append(token)
        number = 0 if token is None else int(token)
        following = str(number + 1) if number + 1 < len(self.pages) else None
        return self.pages[number], following, len(self.pages[number]) + 1  # one read unmatched


def test_paged_without_control_reads_every_page() -> None:
    listing = Pages([{"k": 1}], [], [{"k": 2}, {"k": 3}])
    assert paged(listing, store="s", scope="x") == [{"k": 1}, {"k": 2}, {"k": 3}]
    assert listing.asked == [None, "1", "2"]


def test_paged_pays_its_budget_counts_and_shows_progress() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    lines: list[str] = []
    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    progress = Progress(lines.append, every=0, clock=lambda: now[0])
    control = ScanControl(limiter=limiter, progress=progress)
    listing = Pages([{"k": 1}], [{"k": 2}])
    found = paged(listing, store="pool-1", scope="x", scan=control, total=lambda: 40)
    assert found == [{"k": 1}, {"k": 2}]
    assert (control.calls, control.scanned, limiter.spent) == (2, 4, 4)
    assert slept == pytest.approx([0.2, 0.2])  # each page paid for before the next, and the last
    assert lines[-1].startswith("sweep: pool-1: scanned 4/40 items (10%), 2 matched")
    units = RateLimiter(10, "cu", clock=lambda: now[0], sleep=sleep)
    paged(Pages([{"k": 1}]), store="s", scope="x", scan=ScanControl(limiter=units))
    assert units.spent == 1.0  # half a unit an item read


def test_paged_without_a_total_counts_against_none_and_pays_from_the_requests_start() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def slow(token: Any) -> tuple[list[dict[str, Any]], Any, int]:
        now[0] += 1.0  # the request itself takes a second
        return ([{"k": 1}], None, 4) if token is None else ([], None, 0)

    progress = Progress(lambda line: None, every=0, clock=lambda: now[0])
    progress.begin("earlier", 99)
    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    control = ScanControl(limiter=limiter, progress=progress)
    assert paged(slow, store="s", scope="x", scan=control) == [{"k": 1}]
    assert (progress.table, progress.total) == ("s", 0)  # no total: none shown
    # the page's 4 reads are paid from when its request began (0.0 → paid up at 0.4), not
    # from when it answered (1.0 → 1.4): the next request waits for nothing
    assert limiter.wait() == 1.0 and slept == []


def test_a_resumed_listing_counts_what_its_saved_pages_read(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path, "t")
    listing = Pages([], [{"k": 2}])  # the first page read 1 item and matched none

    def cut_short(token: Any) -> tuple[list[dict[str, Any]], Any, int]:
        if token == "1":
            raise KeyboardInterrupt
        return listing(token)

    with pytest.raises(KeyboardInterrupt):
        paged(cut_short, store="b", scope="x", scan=ScanControl(checkpoint=checkpoint))
    progress = Progress(lambda line: None, every=0)
    again = ScanControl(checkpoint=checkpoint, progress=progress)
    assert paged(listing, store="b", scope="x", scan=again) == [{"k": 2}]
    assert progress.resumed == 1  # the saved page's read, counted as resumed
    assert (progress.scanned, progress.matched) == (3, 1)


def test_paged_resumes_after_its_last_saved_page(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path, "t")
    listing = Pages([{"k": 1}], [{"k": 2}], [{"k": 3}])

    def cut_short(token: Any) -> tuple[list[dict[str, Any]], Any, int]:
        if token == "2":
            raise KeyboardInterrupt
        return listing(token)

    with pytest.raises(KeyboardInterrupt):
        paged(cut_short, store="b", scope="x", scan=ScanControl(checkpoint=checkpoint))
    lines: list[str] = []
    again = ScanControl(checkpoint=checkpoint, progress=Progress(lines.append, every=0))
    listing.asked.clear()
    found = paged(listing, store="b", scope="x", scan=again, total=lambda: 9)
    assert found == [{"k": 1}, {"k": 2}, {"k": 3}]
    assert listing.asked == ["2"]  # only the page after the last saved one
    assert again.calls == 1
    other = paged(Pages([{"k": 9}]), store="b", scope="y", scan=ScanControl(checkpoint=checkpoint))
    assert other == [{"k": 9}]  # another scope: its own file
    done = ScanControl(checkpoint=checkpoint)
    assert paged(listing, store="b", scope="x", scan=done) == found and done.calls == 0


def test_preflight_asks_every_store_kind_whatever_comes_first() -> None:
    failing = [StoreCheck("kind thing", FAIL, "gone", "make it")]
    with pytest.raises(ConfigError, match=r"^kind thing: gone; make it$"):
        preflight({"other": DictKind(), "thing": Failing(rows=failing)})
