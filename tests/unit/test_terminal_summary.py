"""The terminal's env-harness section (harness/reporting/terminal.py): the words a person
reads after a run, for the states the end sequence can leave."""

from __future__ import annotations

from pathlib import Path

from harness.cleanup.residue import ResidueResult
from harness.config import Profile
from harness.kinds.base import Found
from harness.reporting.report import RunReport
from harness.reporting.terminal import Line, summary
from harness.run.lifecycle import RunState
from tests.unit.stubs import ns

RUN = ns(1, "aaaa").run


def state(profile: Profile, residue: ResidueResult | None) -> RunState:
    report = RunReport(str(RUN), "staging", profile.name, "https://t", 7)
    report.resources.update(created=3, cleaned=2, belonging=1)
    run = RunState(profile, RUN, 7, "main", Path("/nowhere"), report)
    run.residue = residue
    return run


def item(key: str) -> Found:
    return Found("thing", {"key": key}, f"thing {key}", marker=f"{RUN}-main-{key}")


def test_an_interrupted_run_says_how_far_cleanup_got_and_what_removes_the_rest() -> None:
    run = state(
        Profile(name="staging", base_url="https://t", protected=False),
        ResidueResult(unfinished=[item("a")]),
    )
    run.report.interrupted = {"signal": "SIGTERM", "cleanup": "abandoned"}
    run.report.left_behind = [{"kind": "lease", "marker": f"{RUN}-lease"}]
    lines = summary(run, "out/report.json")
    assert lines[0] == Line(f"run {RUN} on [staging] https://t (seed 7)")
    assert (
        Line("interrupted (SIGTERM): the tests were stopped; cleanup abandoned", "yellow") in lines
    )
    assert Line("  still there thing a", "red") in lines
    assert not any(line.text.startswith("RESIDUE") for line in lines)  # recorded: no leak
    assert (
        Line(
            f"left in place: 1 item(s); remove them with `harness recover {RUN}` once this run "
            "has ended",
            "red",
        )
        in lines
    )
    assert lines[-1] == Line("report: out/report.json")


def test_a_protected_run_with_residue_says_nothing_was_removed_and_what_removes_it() -> None:
    run = state(
        Profile(name="prod", base_url="https://t", protected=True),
        ResidueResult(leaked=[item("x")]),
    )
    text = [line.text for line in summary(run, None)]
    assert "RESIDUE: 1 leaked item(s) — run failed" in text
    assert any(t.startswith("  nothing was removed: [prod] is protected") for t in text)
    assert any(f"harness residue {RUN} --env prod" in t for t in text)
    assert (
        "1 item(s) the service wrote for recorded resources removed with them (not leaks)" in text
    )


def test_a_clean_run_says_so_in_plain_lines() -> None:
    lines = summary(
        state(Profile(name="staging", base_url="https://t", protected=False), ResidueResult()), None
    )
    assert Line("residue check: clean (nothing left carrying this run's namespace)") in lines
    assert all(line.colour == "" for line in lines)


def test_a_journal_is_forgotten_once_nothing_of_the_run_is_anywhere() -> None:
    """After the residue check: found nothing, or removed everything it found → the journal
    has nothing left to tell; items it could not remove, items kept, or a protected target
    (which it only reads) keep it. A run on a sandbox of its own keeps none: the sandbox and
    everything in it stop with the run."""
    from harness.run.lifecycle import nothing_left, runs_own_sandbox

    open_profile = Profile(name="staging", base_url="https://t", protected=False)
    run = state(open_profile, None)
    assert not nothing_left(run)  # no residue check: cannot tell
    run.residue = ResidueResult()
    assert nothing_left(run)
    run.residue = ResidueResult(leaked=[item("x")], cleaned=[item("x")])
    assert nothing_left(run)
    run.residue = ResidueResult(leaked=[item("x")], uncleaned=[(item("x"), "refused")])
    assert not nothing_left(run)
    run.residue = ResidueResult(kept=[item("k")])
    assert not nothing_left(run)
    protected = state(Profile(name="prod", base_url="https://t", protected=True), None)
    protected.residue = ResidueResult(leaked=[item("x")])
    assert not nothing_left(protected)
    assert not runs_own_sandbox(run)
    own = Profile(name="sandbox", base_url="http://127.0.0.1:1", sources={"base_url": "sandbox"})
    assert runs_own_sandbox(state(own, None))
