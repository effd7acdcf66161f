"""What the simulation prints: a table of scenarios per phase x fault (run / violating),
the count per invariant, and every violation with its scenario id, seed, invariant and
evidence. Owns rendering only.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from harness.faultpoints import PHASES
from tests.simulate.invariants import ORDER
from tests.simulate.matrix import FAULTS, MULTI, MultiScenario
from tests.simulate.runner import Outcome

SHORT = {
    "sigint": "INT",
    "sigint2-0.05": "INT2.05",
    "sigint2-0.3": "INT2.3",
    "sigint2-1": "INT2 1",
    "sigterm-controller": "TERM-c",
    "sigterm-group": "TERM-g",
    "sigkill-controller": "KILL-c",
    "sigkill-worker": "KILL-w",
    "fsize": "fsize",
    "drop-aws": "drop-aws",
    "drop-service": "drop-svc",
}


def _cell(outcomes: list[Outcome]) -> str:
    if not outcomes:
        return "."
    if all(o.reached.startswith("not reached") for o in outcomes) and all(o.ok for o in outcomes):
        return "nr"
    bad = sum(not o.ok for o in outcomes)
    return f"{len(outcomes)}/{bad}"


def render_table(outcomes: list[Outcome], bus: str = "sns") -> str:
    cells: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        s = outcome.scenario
        cells[(s.phase, s.fault)].append(outcome)
    faults = [f for f in FAULTS if any(key[1] == f for key in cells)]
    width = 9
    lines = [
        f"scenarios per phase x fault on {bus}: run/violating (both worker counts together; "
        "nr = not reached, . = not in the matrix)",
        f"{'phase':<14}" + "".join(f"{SHORT[f]:>{width}}" for f in faults),
    ]
    for phase in PHASES:
        if any(key[0] == phase for key in cells):
            row = "".join(f"{_cell(cells.get((phase, f), [])):>{width}}" for f in faults)
            lines.append(f"{phase:<14}{row}")
    multi = [o for o in outcomes if isinstance(o.scenario, MultiScenario)]
    if multi:
        played = [name for name in MULTI if cells.get(("multi-run", name))]
        row = ", ".join(f"{name} {_cell(cells[('multi-run', name)])}" for name in played)
        lines.append(f"{'multi-run':<14}{row}")
    lines.append("legend: " + ", ".join(f"{SHORT[f]} = {FAULTS[f].what}" for f in faults))
    return "\n".join(lines)


def render_summary(outcomes: list[Outcome], seconds: float) -> str:
    violating = [o for o in outcomes if not o.ok]
    by_invariant: Counter[str] = Counter()
    for outcome in outcomes:
        for invariant in {v.invariant for v in outcome.violations}:
            by_invariant[invariant] += 1
    not_reached = sum(o.reached.startswith("not reached") for o in outcomes)
    lines = [
        f"{len(outcomes)} scenario(s) in {seconds:.0f}s; {len(violating)} with violations; "
        f"{not_reached} phase(s) not reached",
        "scenarios violating each invariant: "
        + ", ".join(f"{name} {by_invariant.get(name, 0)}" for name in ORDER),
    ]
    return "\n".join(lines)


def render_violations(outcomes: list[Outcome]) -> str:
    blocks = [o.render() for o in outcomes if not o.ok]
    if not blocks:
        return "violations: none"
    replay = 'replay one: make simulate ARGS="--only <id>@<seed>"'
    return "\n".join(["violations (" + replay + "):", *blocks])


def render_line(outcome: Outcome) -> str:
    """One line per scenario as it finishes."""
    s = outcome.scenario
    verdict = (
        "ok"
        if outcome.ok
        else "VIOLATED " + ",".join(dict.fromkeys(v.invariant for v in outcome.violations))
    )
    status = "; ".join(f"{c.name} {c.status}" for c in outcome.commands)
    reached = "" if outcome.reached in ("reached", "") else f" [{outcome.reached}]"
    return f"{s.replay:<48} {outcome.seconds:>5.1f}s {status:<28} {verdict}{reached}"
