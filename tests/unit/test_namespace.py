from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.namespace import (
    TEST_DOMAIN,
    Namespace,
    RunId,
    find_namespace,
    parse_email,
    worker_part,
)

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
)
workers = st.from_regex(r"[a-z0-9]{1,24}", fullmatch=True)


@given(moments)
def test_run_id_round_trips(moment: datetime) -> None:
    run = RunId.generate(moment)
    assert RunId.parse(str(run)) == run
    assert run.started == moment.replace(microsecond=0)


@given(moments, workers)
def test_namespace_and_email_round_trip(moment: datetime, worker: str) -> None:
    namespace = Namespace(RunId.generate(moment), worker)
    assert Namespace.parse(str(namespace)) == namespace
    email = namespace.email()
    assert email.endswith("@" + TEST_DOMAIN)
    assert parse_email(email) == namespace
    assert find_namespace(f"queue-{namespace.name('q')}") == namespace


@given(moments, moments)
def test_run_ids_sort_by_time(a: datetime, b: datetime) -> None:
    first, second = sorted([a, b])
    if first.replace(microsecond=0) < second.replace(microsecond=0):
        assert str(RunId.generate(first)) < str(RunId.generate(second))


def test_age_is_read_back_from_the_id() -> None:
    now = datetime(2026, 11, 27, 17, 25, 3, tzinfo=UTC)
    run = RunId.parse("itest-20261127t162503-k3f9")
    assert run.age_seconds(now) == timedelta(hours=1).total_seconds()


@pytest.mark.parametrize(
    "email",
    [
        "alice@example.com",
        "itest-20261127t162503-k3f9-gw0-abc@gmail.com",  # right shape, real domain
        "itest-20261127t162503-k3f9-gw0-abc@example.test",  # a different .test domain
        "xitest-20261127t162503-k3f9-gw0-abc@" + TEST_DOMAIN,
    ],
)
def test_foreign_emails_are_not_ours(email: str) -> None:
    assert parse_email(email) is None


@pytest.mark.parametrize("bad", ["", "itest-2026-k3f9", "itest-20261127t162503-K3F9", "run-1"])
def test_malformed_run_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="not a run id"):
        RunId.parse(bad)


def test_worker_part() -> None:
    assert worker_part(None) == "main"
    assert worker_part("gw3") == "gw3"
    assert worker_part("gw3", shard="2") == "s02gw3"
    assert worker_part(None, shard="12") == "s12main"
    for bad in ("0", "100", "x"):
        with pytest.raises(ValueError, match="HARNESS_SHARD"):
            worker_part(None, shard=bad)
    with pytest.raises(ValueError):
        worker_part("GW-3!")


def test_generate_stamps_utc_to_the_second_and_a_random_suffix() -> None:
    from datetime import timezone

    local = datetime(2026, 11, 27, 19, 25, 3, 987654, tzinfo=timezone(timedelta(hours=2)))
    run = RunId.generate(local)
    assert run.started == datetime(2026, 11, 27, 17, 25, 3, tzinfo=UTC)
    assert str(run).startswith("itest-20261127t172503-")
    assert len(run.suffix) == 4 and set(run.suffix) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert len({RunId.generate(local).suffix for _ in range(20)}) > 1
    fresh = RunId.generate()
    assert fresh.started.tzinfo == UTC and fresh.started.microsecond == 0
    assert 0 <= fresh.age_seconds() < 60


def test_parse_names_the_expected_shape() -> None:
    with pytest.raises(ValueError) as error:
        RunId.parse("run-1")
    assert (
        str(error.value) == "'run-1' is not a run id (expected like 'itest-20261127t172503-k3f9')"
    )
    with pytest.raises(ValueError) as error:
        Namespace.parse("itest-20261127t172503-k3f9")
    assert str(error.value) == (
        "'itest-20261127t172503-k3f9' is not a namespace (expected like 'itest-…-k3f9-gw1')"
    )
    assert str(Namespace.parse("itest-20261127t172503-k3f9-s02gw1")) == (
        "itest-20261127t172503-k3f9-s02gw1"
    )


def test_names_and_emails_of_a_namespace() -> None:
    namespace = Namespace.parse("itest-20261127t172503-k3f9-gw1")
    assert namespace.name("q") == "itest-20261127t172503-k3f9-gw1-q"
    assert namespace.email("u") == "itest-20261127t172503-k3f9-gw1-u@" + TEST_DOMAIN
    generated = namespace.name()
    assert generated.startswith("itest-20261127t172503-k3f9-gw1-") and len(generated) == 37
    assert namespace.name() != namespace.name()
    assert namespace.name("") != namespace.name("")  # an empty label is random too


def test_parse_email_ignores_case_and_surrounding_space_and_bounds_the_label() -> None:
    namespace = Namespace.parse("itest-20261127t172503-k3f9-gw1")
    email = namespace.email("u")
    assert parse_email(f"  {email.upper()} ") == namespace
    assert parse_email(namespace.email("a" * 32)) == namespace
    assert parse_email(namespace.email("a" * 33)) is None
    assert parse_email(f"{namespace}-@{TEST_DOMAIN}") is None  # no label
    assert parse_email(email + ".evil.com") is None
    assert parse_email(email.replace(".", "x", 1)) is None  # the domain's dots are literal


def test_find_namespace_in_text() -> None:
    first = Namespace.parse("itest-20261127t172503-k3f9-gw1")
    second = Namespace.parse("itest-20261128t000000-zzzz-main")
    assert find_namespace(f"arn:queue:{first}-q and {second}") == first
    assert find_namespace("itest-20261127t172503-k3f9") is None  # a run id has no worker
    assert find_namespace("") is None


def test_shard_and_worker_parts_are_fixed_width_and_named() -> None:
    from harness.namespace import shard_part

    assert shard_part(None) == "" and shard_part("") == ""
    assert shard_part("1") == "s01" and shard_part("99") == "s99" and shard_part("07") == "s07"
    for bad in ("0", "100", "-1", "x", "1.5"):
        with pytest.raises(ValueError) as error:
            shard_part(bad)
        assert str(error.value) == f"HARNESS_SHARD must be a number from 1 to 99, not {bad!r}"
    assert worker_part("GW1") == "gw1"
    assert worker_part("a" * 24) == "a" * 24
    with pytest.raises(ValueError) as error:
        worker_part("a" * 25)
    assert str(error.value) == f"worker part {'a' * 25!r} must be 1-24 lowercase letters or digits"
    with pytest.raises(ValueError):
        worker_part("a" * 22, shard="3")  # s03 + 22 = 25 characters


def test_generate_stores_utc_whatever_the_machines_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        tokyo = datetime(2026, 11, 28, 2, 25, 3, tzinfo=UTC).astimezone()
        run = RunId.generate(tokyo)
        assert str(run).startswith("itest-20261128t022503-") and run.started.tzinfo == UTC
    finally:
        monkeypatch.undo()
        time.tzset()
