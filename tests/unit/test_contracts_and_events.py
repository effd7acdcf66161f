"""Unit tests of pure event logic: contract lookup and validation (files and a loopback
registry stand-in), the stream's run filter and per-test correlation, expect_event/no_event
verdicts, and the latency summary. The transport here is a stub: no environment involved."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from typing import Any

import pytest

from harness.events.contracts import ContractError, Contracts, ContractViolation
from harness.events.stream import (
    Delivery,
    EventStream,
    Expectations,
    LatencyRecorder,
    build_event,
    percentile,
    summarize,
)
from tests.conftest import CONTRACTS
from tests.registry_standin import RegistryStandIn

NS = "itest-20261127t172503-k3f9-gw0"
OTHER = "itest-20261127t172503-zzzz-gw0"


def created(uid: int = 7, ns: str = NS) -> dict[str, Any]:
    return build_event("user.created", {"uid": uid, "email": f"{ns}-a@x.test", "name": "A"})


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return Contracts.from_directory(CONTRACTS)


def test_valid_events_pass(contracts: Contracts) -> None:
    event = created()
    assert contracts.validate(event) is event
    contracts.validate(build_event("user.deleted", {"uid": 1, "email": "a@b.test"}))


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda e: e["data"].__setitem__("uid", "7"), "$.data.uid"),
        (lambda e: e["data"].pop("email"), "$.data"),
        (lambda e: e.__setitem__("id", "not-a-uuid"), "$.id"),
        (lambda e: e["data"].__setitem__("password", "x"), "$.data"),
    ],
    ids=["wrong-type", "missing-field", "bad-id", "extra-field"],
)
def test_violation_names_the_offending_path(contracts: Contracts, mutate: Any, path: str) -> None:
    event = created()
    mutate(event)
    with pytest.raises(ContractViolation) as info:
        contracts.validate(event)
    assert info.value.path == path
    assert f"violates its contract at {path}:" in str(info.value)


def test_unknown_version_and_bad_type_are_contract_errors(contracts: Contracts) -> None:
    event = created()
    event["version"] = 9
    with pytest.raises(ContractError, match=r"no contract for user\.created v9"):
        contracts.validate(event)
    with pytest.raises(ContractError, match="bad event type"):
        contracts.validate({**created(), "type": "../etc"})
    with pytest.raises(ContractViolation, match="integer 'version'"):
        contracts.validate({**created(), "version": "1"})


def test_schemas_come_from_the_registry_when_one_is_named() -> None:
    standin = RegistryStandIn.from_contracts(CONTRACTS)
    # version 2 registered later: 'latest' is 2, so v1 events make a second, exact lookup
    v2 = copy.deepcopy(standin.subjects["user.created-value"][1])
    v2["properties"]["version"] = {"const": 2}
    standin.subjects["user.created-value"][2] = v2
    with standin:
        contracts = Contracts.for_registry_or_directory(standin.url)
        contracts.validate(created())
        bad = created()
        bad["data"]["uid"] = -1
        with pytest.raises(ContractViolation, match=r"\$\.data\.uid"):
            contracts.validate(bad)
        with pytest.raises(ContractError, match=r"no user\.deleted-value version 1"):
            standin.subjects.pop("user.deleted-value")
            contracts.validate(build_event("user.deleted", {"uid": 1, "email": "a@b.test"}))
    assert "/subjects/user.created-value/versions/latest" in standin.requests
    assert "/subjects/user.created-value/versions/1" in standin.requests


def test_an_unreachable_registry_is_a_clear_error() -> None:
    contracts = Contracts.from_registry("http://127.0.0.1:9")
    with pytest.raises(ContractError, match="unreachable"):
        contracts.validate(created())


class StubTransport:
    def __init__(self) -> None:
        self.published: list[tuple[str, Mapping[str, str]]] = []

    def receive(self, wait_seconds: int) -> list[Delivery]:
        return []

    def publish(self, body: str, attributes: Mapping[str, str]) -> str:
        self.published.append((body, attributes))
        return "m"

    def deliver_to_consumer(self, body: str, attributes: Mapping[str, str], delay: int = 0) -> str:
        return "m"


def deliver(stream: EventStream, event: Any) -> None:
    body = event if isinstance(event, str) else json.dumps(event)
    stream.ingest(Delivery(body, {"type": "user.created"}, time.time()))


def test_stream_keeps_only_its_namespace_and_views_only_their_test(contracts: Contracts) -> None:
    stream = EventStream(StubTransport(), contracts, keep=NS)
    deliver(stream, created(1))
    deliver(stream, created(2, ns=OTHER))
    deliver(stream, created(3))
    assert stream.dropped == 1
    assert [e.data["uid"] for e in stream.snapshot()] == [1, 3]
    mine = Expectations(stream, lambda: {"3"}, LatencyRecorder())
    assert mine.expect_event("user.created", timeout=0.1).data["uid"] == 3
    with pytest.raises(AssertionError, match=r"no user.created event with \{'uid': 1\}"):
        mine.expect_event("user.created", where={"uid": 1}, timeout=0.1)
    with pytest.raises(AssertionError, match=r"unexpected user\.created"):
        mine.no_event("user.created", within=0.1)
    mine.no_event("user.deleted", within=0.1)


def test_a_correlated_violation_fails_once_and_a_foreign_one_never(contracts: Contracts) -> None:
    stream = EventStream(StubTransport(), contracts, keep=NS)
    bad = created(4)
    bad["data"]["uid"] = "four"
    deliver(stream, bad)
    deliver(stream, "{" + NS + " not json")
    others = Expectations(stream, lambda: {"5"}, LatencyRecorder())
    others.no_event("user.created", within=0.1)
    mine = Expectations(stream, lambda: {f"{NS}-a@x.test"}, LatencyRecorder())
    with pytest.raises(ContractViolation, match=r"at \$\.data\.uid: 'four' is not of type"):
        mine.expect_event("user.created", timeout=0.1)
    assert mine.unreported_violations() == []


def test_publish_validates_and_correlates(contracts: Contracts) -> None:
    transport = StubTransport()
    stream = EventStream(transport, contracts, keep=NS)
    view = Expectations(stream, set, LatencyRecorder())
    view.publish("user.deleted", {"uid": 9, "email": f"{NS}-b@x.test"})
    assert {"9", f"{NS}-b@x.test"} <= view.keys()
    assert transport.published[0][1] == {"type": "user.deleted"}
    with pytest.raises(ContractViolation):
        view.publish("user.deleted", {"uid": 9})
    assert len(transport.published) == 1


def test_latency_summary_uses_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([0.2], 95) == 0.2
    recorder = LatencyRecorder()
    for v in (0.1, 0.3, 0.2):
        recorder.add("user.created", v)
    assert summarize(recorder.samples()) == {
        "user.created": {"count": 3, "p50": 0.2, "p95": 0.3, "max": 0.3}
    }
    assert summarize({"user.deleted": []}) == {}


def test_registry_standin_serves_the_contract_files() -> None:
    standin = RegistryStandIn.from_contracts(CONTRACTS)
    assert set(standin.subjects) == {"user.created-value", "user.deleted-value"}
