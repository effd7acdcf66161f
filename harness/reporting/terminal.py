"""The run's summary in the terminal: the ``env-harness`` section pytest prints at the end.

Owns wording what the run did — where and with which seed, what it created and cleaned, an
interruption and how far its cleanup got, the residue check's verdict (leaks, unfinished
cleanup, what a protected target keeps and what removes it, what was left in place and the
command that removes it), what the service wrote for recorded resources, what was kept for
debugging — as lines with a colour each. It reads the run's state; it writes nothing, and
never touches the environment (the core plugin prints the lines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from harness.run.lifecycle import RunState


class Line(NamedTuple):
    text: str
    colour: str = ""  # "", "red" or "yellow"


class _Collect:
    """Takes ``write_line(text, red=…/yellow=…)`` as pytest's terminal writer would."""

    def __init__(self, out: list[Line]) -> None:
        self.out = out

    def write_line(self, text: str, **markup: Any) -> None:
        colour = next((name for name, on in markup.items() if on), "")
        self.out.append(Line(text, colour))


def summary(state: RunState, report_path: str | None) -> list[Line]:
    """The lines of the run's summary, each with its colour ("" plain)."""
    out: list[Line] = []
    tr = _Collect(out)
    report = state.report
    version = f", service version {report.service_version}" if report.service_version else ""
    tr.write_line(
        f"run {state.run_id} on [{state.profile.name}] {state.profile.base_url} (seed "
        f"{state.seed}{version})"
    )
    tr.write_line(
        f"resources: {report.resources['created']} created, {report.resources['cleaned']} "
        f"cleaned, {report.resources['kept']} kept, {report.resources['failed']} cleanup failed"
    )
    if report.skipped_by_protection:
        tr.write_line(
            f"{report.skipped_by_protection} test(s) skipped: protected target "
            f"(only readonly tests run)",
            yellow=True,
        )
    for failure in report.cleanup_failures:
        tr.write_line(f"CLEANUP FAILED: {failure}", red=True)
    if report.interrupted:
        tr.write_line(
            f"interrupted ({report.interrupted.get('signal') or 'KeyboardInterrupt'}): the "
            f"tests were stopped; cleanup {report.interrupted.get('cleanup', 'finished')}",
            yellow=True,
        )
    for error in report.errors:
        tr.write_line(f"ERROR: {error}", red=True)
    if report.service_logs.get("error"):  # said once for the run; never changes its verdict
        tr.write_line(
            f"service logs could not be read ({report.service_logs['error']}): failed tests "
            f"carry no service log lines",
            yellow=True,
        )
    residue = state.residue
    protected = state.profile.is_protected
    if residue is None:
        tr.write_line("residue check: not run", red=True)
    elif residue.clean:
        tr.write_line("residue check: clean (nothing left carrying this run's namespace)")
    else:
        if residue.unfinished:
            tr.write_line(
                f"CLEANUP UNFINISHED: {len(residue.unfinished)} recorded item(s) were still "
                f"there after the tests' cleanup (interrupted, cut short or failed)",
                red=True,
            )
            for item in residue.unfinished:
                tr.write_line(f"  still there {item.summary}", red=True)
        if residue.leaked:
            tr.write_line(f"RESIDUE: {len(residue.leaked)} leaked item(s) — run failed", red=True)
            for item in residue.leaked:
                tr.write_line(f"  leaked {item.summary}", red=True)
        for item, why in residue.uncleaned:
            tr.write_line(f"  could not remove {item.summary}: {why}", red=True)
        if residue.cleaned:
            what = "item(s)" if residue.unfinished else "leaked item(s)"
            tr.write_line(f"  {len(residue.cleaned)} {what} removed after the check")
        elif protected:
            tr.write_line(
                f"  nothing was removed: [{state.profile.name}] is protected, so the harness "
                f"writes nothing there. Remove them by hand, or — if it really is a test "
                f"environment — set protected = false in its profile and run `harness "
                f"residue {state.run_id} --env {state.profile.name}`",
                red=True,
            )
    if report.left_behind:
        tr.write_line(
            f"left in place: {len(report.left_behind)} item(s); remove them with `harness "
            f"recover {state.run_id}` once this run has ended",
            red=True,
        )
    belonging = int(report.resources.get("belonging", 0))  # at cleanup and at the check
    if belonging:
        tr.write_line(
            f"{belonging} item(s) the service wrote for recorded resources removed with them "
            f"(not leaks)"
        )
    if residue is not None and residue.kept:
        tr.write_line(
            f"kept for debugging (--keep-on-failure): {len(residue.kept)} item(s) of run "
            f"{state.run_id}:",
            yellow=True,
        )
        for item in residue.kept:
            tr.write_line(f"  kept {item.summary}", yellow=True)
        tr.write_line(
            f"  list them with `harness sweep --env {state.profile.name} --older-than 0` "
            f"(a dry run); they are swept once older than the profile's test_data_ttl",
            yellow=True,
        )
    if report_path:
        tr.write_line(f"report: {report_path}")
    return out
