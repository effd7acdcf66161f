"""Trace context: W3C ``traceparent`` on every request of the API client, a span per request,
one trace per test, ``X-Amzn-Trace-Id`` derived from the same id when the profile asks; and
what a published event carries. Real HTTP to a loopback server (no service logic)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from harness.clients.http import ApiClient
from harness.clients.trace import (
    TestTrace,
    new_trace_id,
    trace_id_of,
    traceparent,
    xray_header,
)
from harness.config import ConfigError, load_profile
from harness.events.contracts import Contracts
from harness.events.stream import EventStream, Expectations, LatencyRecorder
from tests.unit.loopback import loopback

W3C = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def test_ids_follow_the_w3c_spec_and_name_their_start_for_xray() -> None:
    ids = {new_trace_id() for _ in range(200)}
    assert len(ids) == 200
    for trace_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32
    at = 1_700_000_000.0
    assert new_trace_id(at).startswith(f"{int(at):08x}")
    parent = traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert parent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_id_of(parent) == "4bf92f3577b34da6a3ce929d0e0e4736"
    for bad in ("", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-abc-def-01"):
        assert trace_id_of(bad) == ""
    assert trace_id_of(f"00-{'0' * 32}-00f067aa0ba902b7-01") == ""  # all zeros: invalid
    assert xray_header("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8") == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    )


def test_each_test_gets_a_new_trace_and_each_request_a_new_span() -> None:
    trace = TestTrace()
    first = trace.begin()
    assert not trace.used
    parents = [W3C.fullmatch(trace.headers()["traceparent"]) for _ in range(50)]
    assert all(parents) and trace.used
    assert {p[1] for p in parents if p} == {first}
    assert len({p[2] for p in parents if p}) == 50
    second = trace.begin()
    assert second != first and not trace.used
    assert "X-Amzn-Trace-Id" not in trace.headers()


@pytest.fixture
def server() -> Any:
    with loopback() as state:
        for path in ("/a", "/b", "/c", "/d"):
            state.route(path, 200, {"ok": True})
        yield state


def test_every_request_carries_the_tests_trace_and_the_run_header(server: Any) -> None:
    trace = TestTrace(xray=True)
    api = ApiClient(server.url, "itest-20260101t000000-abcd", trace=trace)
    trace_id = trace.begin()
    api.get("/a")
    api.post("/b", json={"x": 1})
    api.get("/c", headers={"X-Custom": "1"})
    sent = server.received[-3:]
    parents = [W3C.match(r.headers["traceparent"]) for r in sent]
    assert all(p is not None and p[1] == trace_id for p in parents)
    assert len({p[2] for p in parents if p}) == 3  # a span per request
    for request, parent in zip(sent, parents, strict=True):
        assert request.headers["X-Harness-Run"] == "itest-20260101t000000-abcd"
        assert parent is not None
        assert request.headers["X-Amzn-Trace-Id"] == (
            f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={parent[2]};Sampled=1"
        )
    # the transcript names each request's span, not the routine header
    shown = api.transcript.render()
    assert "GET /a -> 200" in shown and f"span {parents[0][2]}" in shown  # type: ignore[index]
    assert "traceparent" not in shown
    # a caller's own trace header wins
    api.get("/d", headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    assert server.received[-1].headers["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def test_the_xray_header_is_sent_only_when_the_profile_asks(tmp_path: Any) -> None:
    file = tmp_path / "environments.toml"
    file.write_text('[a]\nbase_url = "http://127.0.0.1:1"\nidentity = "none"\nprotected = false\n')
    assert load_profile("a", file, environ={}, declared={}).trace_xray is False
    assert (
        load_profile("a", file, environ={"HARNESS_TRACE_XRAY": "true"}, declared={}).trace_xray
        is True
    )
    with pytest.raises(ConfigError, match="trace_xray must be true or false"):
        load_profile("a", file, environ={"HARNESS_TRACE_XRAY": "maybe"}, declared={})


class _Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []

    def receive(self, wait_seconds: int) -> list[Any]:
        time.sleep(0.01)
        return []

    def publish(self, body: str, attributes: Any) -> str:
        self.sent.append(("publish", dict(attributes)))
        return "m-1"

    def deliver_to_consumer(self, body: str, attributes: Any, delay: int = 0) -> str:
        self.sent.append(("deliver", dict(attributes)))
        return "m-2"


def test_what_a_test_publishes_or_delivers_carries_its_trace(tmp_path: Any) -> None:
    from tests.conftest import CONTRACTS

    transport = _Transport()
    stream = EventStream(transport, Contracts.from_directory(CONTRACTS), keep="itest")
    trace = TestTrace()
    trace_id = trace.begin()
    view = Expectations(stream, set, LatencyRecorder(), trace=trace)
    event = view.publish("user.deleted", {"uid": 9, "email": "itest-x@x.test"})
    view.deliver_to_consumer(event)
    for _, attributes in transport.sent:
        assert attributes["type"] == "user.deleted"
        assert trace_id_of(attributes["traceparent"]) == trace_id
    # the timeline names an SNS/SQS write by its event id, as it names the event once seen
    rows = view.timeline()
    assert [row["where"] for row in rows] == [f"event {event.id}"] * 2
