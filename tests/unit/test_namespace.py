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
