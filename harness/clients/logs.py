"""The service's own log lines for a failed test, from CloudWatch Logs.

Owns the lookup a failed test gets: in each of the profile's ``log_groups``, the lines
carrying the test's trace id (FilterLogEvents with the quoted id as its filter pattern, a
read: allowed on a protected profile), bounded by the test's time window (with a margin for
clocks that differ) and a line cap, waiting up to the profile's ``log_wait`` for lines still
being ingested (until two lookups in a row find the same lines), each line cut and masked by
the worker's :class:`~harness.safety.redact.Redactor` before anyone sees it. It counts its
calls (a passing run makes none), and when the logs cannot be read it remembers why, once,
and looks no more: a run never fails for its logs. It never writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from harness.safety.redact import SHOWN, Redactor

#: The most lines one failed test gets (all groups together, oldest first).
MAX_LINES = 50
#: Seconds added on both sides of a test's time window: the service's clock may differ.
CLOCK_MARGIN = 30.0
#: The first pause between lookups while lines are still arriving (doubled, up to 1 s).
FIRST_PAUSE = 0.2


def _iso(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ServiceLogs:
    """One worker's lookups. ``client`` makes the CloudWatch Logs client on first use (boto3's
    ``logs``: a passing run never builds it)."""

    def __init__(
        self,
        client: Callable[[], Any],
        log_groups: Iterable[str],
        redactor: Redactor,
        *,
        wait: float = 5.0,
        max_lines: int = MAX_LINES,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client_factory = client
        self._client: Any = None
        self.log_groups = tuple(log_groups)
        self.redactor = redactor
        self.wait = wait
        self.max_lines = max_lines
        self._clock, self._sleep = clock, sleep
        #: FilterLogEvents calls made, failed tests looked up, lines attached.
        self.calls = 0
        self.lookups = 0
        self.lines = 0
        #: Why the logs cannot be read ("" while they can): said once, no lookup after it.
        self.error = ""

    @property
    def enabled(self) -> bool:
        return bool(self.log_groups) and not self.error

    def lookup(self, trace_id: str, started: float) -> list[dict[str, Any]]:
        """The lines carrying ``trace_id`` since ``started`` (epoch seconds), redacted:
        ``[{"timestamp", "log_group", "message"}]``, oldest first; [] when there are none or
        the logs cannot be read (then :attr:`error` says why)."""
        if not self.enabled or not trace_id:
            return []
        self.lookups += 1
        deadline = time.monotonic() + self.wait
        pause = FIRST_PAUSE
        previous: list[dict[str, Any]] | None = None
        while True:
            try:
                found = self._fetch(trace_id, started)
            except Exception as error:  # any failure to read means the same: no logs
                self.error = f"{type(error).__name__}: {error}"
                return []
            # Lines ingest late: done once two lookups agree (and found some), or time is up.
            if (found and found == previous) or time.monotonic() >= deadline:
                break
            previous = found
            self._sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)
        self.lines += len(found)
        return [
            {**line, "message": self.redactor.shown(str(line["message"]), SHOWN)} for line in found
        ]

    def _fetch(self, trace_id: str, started: float) -> list[dict[str, Any]]:
        if self._client is None:
            self._client = self._client_factory()
        start = int((started - CLOCK_MARGIN) * 1000)
        end = int((self._clock() + CLOCK_MARGIN) * 1000)
        found: list[tuple[int, str, str]] = []
        for group in self.log_groups:
            token: str | None = None
            taken = 0
            while taken < self.max_lines:
                kwargs: dict[str, Any] = {
                    "logGroupName": group,
                    "filterPattern": f'"{trace_id}"',
                    "startTime": start,
                    "endTime": end,
                    "limit": self.max_lines - taken,
                }
                if token:
                    kwargs["nextToken"] = token
                self.calls += 1
                page = self._client.filter_log_events(**kwargs)
                events = page.get("events", [])
                taken += len(events)
                found += [
                    (int(e.get("timestamp", 0)), group, str(e.get("message", "")).rstrip("\n"))
                    for e in events
                ]
                token = page.get("nextToken")
                if not token or not events:
                    break
        found.sort(key=lambda line: line[0])
        return [
            {"timestamp": _iso(ms), "log_group": group, "message": message}
            for ms, group, message in found[: self.max_lines]
        ]

    def figures(self) -> dict[str, Any]:
        """What the run report says of this worker's lookups."""
        return {
            "calls": self.calls,
            "lookups": self.lookups,
            "lines": self.lines,
            "error": self.error,
        }
