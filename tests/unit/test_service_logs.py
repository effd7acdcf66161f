"""The service-log lookup of a failed test, as pure logic over a stand-in CloudWatch Logs
client: the filter pattern and time window it asks for, the line cap, pages, waiting for late
lines until two lookups agree, masking, and "cannot read" said once with no lookup after it.
(The real lookup, against CloudWatch Logs on the emulator: tests/e2e/test_service_logs.py.)"""

from __future__ import annotations

from typing import Any

from harness.clients.logs import CLOCK_MARGIN, ServiceLogs
from harness.safety.redact import MASK, Redactor

TRACE = "5759e988bd862e3fe1be46a994272793"


class Logs:
    """Answers FilterLogEvents from ``lines`` (group -> [(ms, message)]) by substring, as
    CloudWatch answers a quoted term; ``arrive`` adds lines on the n-th call (late ingestion)."""

    def __init__(self, lines: dict[str, list[tuple[int, str]]], page: int = 1000) -> None:
        self.lines = lines
        self.page = page
        self.calls: list[dict[str, Any]] = []
        self.arrive: dict[int, tuple[str, tuple[int, str]]] = {}
        self.fail: Exception | None = None

    def filter_log_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail is not None:
            raise self.fail
        late = self.arrive.pop(len(self.calls), None)
        if late:
            self.lines.setdefault(late[0], []).append(late[1])
        term = kwargs["filterPattern"].strip('"')
        hits = [
            {"timestamp": ms, "message": message}
            for ms, message in self.lines.get(kwargs["logGroupName"], [])
            if term in message and kwargs["startTime"] <= ms <= kwargs["endTime"]
        ]
        start = int(kwargs.get("nextToken") or 0)
        chunk = hits[start : start + min(self.page, kwargs["limit"])]
        more = start + len(chunk) < len(hits)
        return {"events": chunk, **({"nextToken": str(start + len(chunk))} if more else {})}


def lookup(client: Logs, groups: tuple[str, ...] = ("/aws/lambda/api",), **kwargs: Any) -> Any:
    now = [1_000.0]
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        now[0] += seconds

    logs = ServiceLogs(
        lambda: client, groups, Redactor(), clock=lambda: now[0], sleep=sleep, **kwargs
    )
    return logs, naps


def test_the_lines_carrying_the_trace_id_in_the_tests_window_oldest_first_across_groups() -> None:
    client = Logs(
        {
            "/aws/lambda/api": [
                (990_500, f'{{"trace_id": "{TRACE}", "path": "/users/1", "status": 500}}'),
                (990_400, '{"trace_id": "another", "path": "/users/2"}'),
            ],
            "/aws/lambda/worker": [(990_450, f'{{"trace_id": "{TRACE}", "event": "x"}}')],
        }
    )
    logs, _ = lookup(client, ("/aws/lambda/api", "/aws/lambda/worker"), wait=0.0)
    found = logs.lookup(TRACE, started=990.0)
    assert [line["log_group"] for line in found] == ["/aws/lambda/worker", "/aws/lambda/api"]
    assert found[1] == {
        "timestamp": "1970-01-01T00:16:30.500Z",
        "log_group": "/aws/lambda/api",
        "message": f'{{"trace_id": "{TRACE}", "path": "/users/1", "status": 500}}',
    }
    first = client.calls[0]
    assert first["filterPattern"] == f'"{TRACE}"'
    assert first["startTime"] == int((990.0 - CLOCK_MARGIN) * 1000)
    assert first["endTime"] == int((1_000.0 + CLOCK_MARGIN) * 1000)
    assert logs.figures() == {"calls": len(client.calls), "lookups": 1, "lines": 2, "error": ""}


def test_the_line_cap_holds_across_pages_and_groups() -> None:
    many = [(990_000 + i, f"{TRACE} line {i}") for i in range(30)]
    client = Logs({"/a": list(many), "/b": list(many)}, page=7)
    logs, _ = lookup(client, ("/a", "/b"), wait=0.0, max_lines=12)
    found = logs.lookup(TRACE, started=990.0)
    assert len(found) == 12
    assert all(call["limit"] <= 12 for call in client.calls)
    assert any("nextToken" in call for call in client.calls)  # it followed the pages


def test_late_lines_are_waited_for_until_two_lookups_agree() -> None:
    client = Logs({"/aws/lambda/api": []})
    client.arrive[2] = ("/aws/lambda/api", (990_100, f"{TRACE} request"))
    client.arrive[3] = ("/aws/lambda/api", (990_200, f"{TRACE} processed"))
    logs, naps = lookup(client, wait=5.0)
    found = logs.lookup(TRACE, started=990.0)
    assert [line["message"] for line in found] == [f"{TRACE} request", f"{TRACE} processed"]
    assert len(client.calls) == 4  # nothing, one line, two lines, the same two: done
    assert len(naps) == 3


def test_no_line_at_all_waits_out_log_wait_and_no_longer() -> None:
    import time

    client = Logs({"/aws/lambda/api": []})
    logs = ServiceLogs(lambda: client, ("/aws/lambda/api",), Redactor(), wait=0.3)
    started = time.monotonic()
    assert logs.lookup(TRACE, started=time.time()) == []
    assert 0.25 <= time.monotonic() - started < 2.0
    assert logs.error == ""


def test_a_secret_in_a_service_line_is_masked() -> None:
    redactor = Redactor()
    redactor.add_secret("tok-1234567890abcdef")
    client = Logs(
        {"/g": [(990_000, f'{TRACE} {{"token": "tok-1234567890abcdef", "password": "hunter22"}}')]}
    )
    logs = ServiceLogs(lambda: client, ("/g",), redactor, wait=0.0)
    (line,) = logs.lookup(TRACE, started=990.0)
    assert "tok-1234567890abcdef" not in line["message"] and "hunter22" not in line["message"]
    assert line["message"].count(MASK) == 2


def test_logs_that_cannot_be_read_are_said_once_and_not_asked_again() -> None:
    client = Logs({})
    client.fail = RuntimeError("AccessDeniedException: not allowed")
    logs, _ = lookup(client, wait=5.0)
    assert logs.lookup(TRACE, started=990.0) == []
    assert logs.error == "RuntimeError: AccessDeniedException: not allowed"
    assert not logs.enabled
    assert logs.lookup(TRACE, started=990.0) == []
    assert len(client.calls) == 1


def test_no_log_groups_means_no_client_and_no_call() -> None:
    made: list[int] = []

    def client() -> Any:
        made.append(1)
        return Logs({})

    logs = ServiceLogs(client, (), Redactor())
    assert logs.lookup(TRACE, started=990.0) == []
    assert made == [] and logs.figures()["calls"] == 0
