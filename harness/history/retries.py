"""Safe retries: a failed test runs again only once its failed attempt left nothing behind.

Owns ``--retries N`` and the ``flaky`` marker (``@pytest.mark.flaky(retries=2)``: its own
count), as one replacement of pytest's run protocol for the tests that may be retried:

1. An attempt runs setup and call. When it failed (setup or call) and may be retried —
   attempts left; not a protected-target refusal; no stop requested — its teardown tears down
   only the test's own fixtures (module and session ones stay up for the next attempt), so the
   ``ledger`` fixture cleans the attempt's resources through the ledger and the ownership gate
   (never kept with ``--keep-on-failure``: that keeps the last attempt's).
2. The attempt's scope is then checked: every resource it recorded is looked up by key, with
   what belongs to it (:func:`harness.cleanup.residue.look_by_key`). Anything still there —
   or a teardown that failed (a cleanup failure) — and the test is *not* retried: its failure
   stands, and the run's residue check deals with what is left.
3. The next attempt gets fresh names (the namespace's random labels; ``fake`` is seeded by
   the attempt too) and a new trace.

A failed attempt that is retried is reported with the outcome ``rerun`` (``R`` in the
terminal, as pytest-rerunfailures does: not a failure, not counted by JUnit); the last
attempt's reports are the test's. Each test's attempts are counted by the history plugin.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _pytest.outcomes import Exit
from _pytest.runner import CallInfo, call_and_report

from harness.pytest_plugin.attempts import ATTEMPT, REFUSED, RETRYING
from harness.run.interrupts import STOP
from harness.safety.protect import ProtectedTargetError

MARKER = (
    "flaky(retries=1): retry this test up to `retries` times when it fails (each failed "
    "attempt's data cleaned and checked gone first); its own count, over --retries"
)


class RetryMarkerError(ValueError):
    """A ``flaky`` marker whose count is not a whole number ≥ 0."""


def allowed(item: pytest.Item, default: int) -> int:
    """How many times the test may be retried: its ``flaky`` marker's count, else
    ``--retries``."""
    marker = item.get_closest_marker("flaky")
    if marker is None:
        return default
    value = marker.kwargs.get("retries", marker.args[0] if marker.args else 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RetryMarkerError(
            f"{item.nodeid}: @pytest.mark.flaky(retries={value!r}): give a whole number ≥ 0"
        )
    return value


class _Sibling:
    """What the teardown of an attempt to be retried is told comes next: a test beside this
    one, so only the test's own fixtures are torn down."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = [*item.listchain()[:-1], self]

    def listchain(self) -> list[Any]:
        return self._chain


def _forget_failed_fixtures(item: pytest.Item) -> None:
    """A fixture whose setup failed keeps its error cached for its scope; the next attempt
    runs it again (and a class test gets a fresh instance)."""
    info = getattr(item, "_fixtureinfo", None)
    for definitions in getattr(info, "name2fixturedefs", {}).values():
        for definition in definitions:
            cached = getattr(definition, "cached_result", None)
            if cached is not None and cached[2] is not None:
                definition.cached_result = None
                finalizers = getattr(definition, "_finalizers", None)
                if finalizers is not None:
                    finalizers.clear()
    if getattr(item, "_instance", None) is not None:
        del item._instance  # type: ignore[attr-defined]
        item._obj = None  # type: ignore[attr-defined]


def _ledger_of(item: pytest.Item) -> Any:
    from harness.pytest_plugin.plugin import STATE  # the plugin loads this module

    state = item.config.stash.get(STATE, None)
    session = state.session if state is not None else None
    if session is None or "ledger" not in session.__dict__:
        return None, None
    return session, session.ledger


def attempt_residue(item: pytest.Item, first: int) -> list[str]:
    """What the attempt's scope (this test's resources recorded since ``first``) still has
    in the environment, by key: "" when nothing."""
    session, ledger = _ledger_of(item)
    if ledger is None:
        return []
    mine = [r for r in ledger.recorded[first:] if r.scope == item.nodeid]
    if not mine:
        return []
    from harness.cleanup.residue import look_by_key, still_present

    unsettled = [f"{r.describe()} ({r.state})" for r in mine if r.state != "deleted"]
    present, belonging = look_by_key(session.kinds, mine)
    items = present + belonging
    # what the service removes on its own after a delete (a user's notifications, by its
    # event consumer) gets the run's residue-settle time to go
    deadline = time.monotonic() + float(item.config.getoption("harness_residue_settle"))
    while items and time.monotonic() < deadline and not STOP.requested:
        time.sleep(0.2)
        items = still_present(session.kinds, items)
    return unsettled + [f.summary for f in items]


def _recorded_so_far(item: pytest.Item) -> int:
    _, ledger = _ledger_of(item)
    return len(ledger.recorded) if ledger is not None else 0


def run(item: pytest.Item, nextitem: pytest.Item | None, retries: int) -> bool:
    """The test's protocol with up to ``retries`` retries; returns True (done)."""
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    notes: list[str] = []
    attempt = 0
    while True:
        attempt += 1
        item.stash[ATTEMPT] = attempt
        item.stash[REFUSED] = False
        reports, again, why = _attempt(item, nextitem, attempt, may_retry=attempt <= retries)
        if again:
            notes.append(why)
            for report in reports:
                if report.failed:
                    report.outcome = "rerun"  # type: ignore[assignment]
                item.ihook.pytest_runtest_logreport(report=report)
            _forget_failed_fixtures(item)
            continue
        if why:
            notes.append(why)
        if notes:
            last = next((r for r in reversed(reports) if r.when != "teardown"), reports[-1])
            last.sections.append(("harness: attempts", "\n".join(notes)))
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        break
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _attempt(
    item: pytest.Item, nextitem: pytest.Item | None, attempt: int, *, may_retry: bool
) -> tuple[list[pytest.TestReport], bool, str]:
    """One attempt: (its reports, whether to retry, what to say about it)."""
    first = _recorded_so_far(item)
    has_request = hasattr(item, "_request")
    if has_request and not item._request:  # type: ignore[attr-defined]
        item._initrequest()  # type: ignore[attr-defined]
    try:
        reports = [call_and_report(item, "setup", log=False)]
        if reports[0].passed:
            reports.append(call_and_report(item, "call", log=False))
        failed = [r for r in reports if r.failed and not hasattr(r, "wasxfail")]
        stopping = bool(item.session.shouldfail or item.session.shouldstop)
        retry = (
            bool(may_retry and failed and not item.stash.get(REFUSED, False) and not STOP.requested)
            and not stopping
        )
        item.stash[RETRYING] = retry
        following: Any = _Sibling(item) if retry else (None if stopping else nextitem)
        teardown = call_and_report(item, "teardown", log=False, nextitem=following)
        reports.append(teardown)
    finally:
        item.stash[RETRYING] = False
        if has_request:
            item._request = False  # type: ignore[attr-defined]
            item.funcargs = None  # type: ignore[attr-defined]
    if not failed:
        return reports, False, ""
    if not retry:
        if item.stash.get(REFUSED, False):
            return reports, False, f"attempt {attempt} failed on a protected refusal: not retried"
        return reports, False, ""
    why = ""
    if teardown.failed:
        why = f"attempt {attempt} failed and so did its teardown (its cleanup): not retried"
    else:
        left = attempt_residue(item, first)
        if left:
            why = (
                f"attempt {attempt} failed and left {len(left)} item(s) behind "
                f"({'; '.join(left[:5])}): not retried"
            )
    if why:
        # not retried after all: tear down what the next test does not need (the module's
        # and session's fixtures, as pytest's own teardown would have)
        rest = CallInfo.from_call(
            lambda: item.session._setupstate.teardown_exact(nextitem),
            when="teardown",
            reraise=(Exit, KeyboardInterrupt),
        )
        if rest.excinfo is not None:
            reports.append(item.ihook.pytest_runtest_makereport(item=item, call=rest))
        return reports, False, why
    cleaned = len([r for r in _recorded(item, first)])
    return (
        reports,
        True,
        (
            f"attempt {attempt} failed ({_line(failed[-1])}); its {cleaned} resource(s) were "
            f"cleaned through the ledger and checked gone before attempt {attempt + 1}"
        ),
    )


def _recorded(item: pytest.Item, first: int) -> list[Any]:
    _, ledger = _ledger_of(item)
    if ledger is None:
        return []
    return [r for r in ledger.recorded[first:] if r.scope == item.nodeid]


def _line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "failed")
    return " ".join(text.split())[:200]


def note_refusal(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    if call.excinfo is not None and call.excinfo.errisinstance(ProtectedTargetError):
        item.stash[REFUSED] = True
